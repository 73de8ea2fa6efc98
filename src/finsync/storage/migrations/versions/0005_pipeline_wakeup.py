"""the pipeline wakes on new raw events: a PostgreSQL notify per inserting statement

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 00:40:00

On PostgreSQL, every statement that inserts into `raw_events` notifies channel
`finsync_work` (`hub.wakeup.CHANNEL`), delivered once at commit (NOTIFY is transactional,
and equal notifications of one transaction fold into one), so a pipeline in any process
wakes on work committed by any other. The payload is the writer's `application_name`
(`storage.db.process_name`), so that a process can ignore its own (its writers notify it
directly). The trigger is per statement, without a transition table, so that it costs
intake as little as can be. SQLite has no such signal: nothing to do
there.
"""

from __future__ import annotations

from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

_FUNCTION = """
CREATE OR REPLACE FUNCTION finsync_raw_events_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('finsync_work', current_setting('application_name'));
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
"""
_TRIGGER = """
CREATE TRIGGER raw_events_notify AFTER INSERT ON raw_events
FOR EACH STATEMENT EXECUTE FUNCTION finsync_raw_events_notify()
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute(_FUNCTION)
    op.execute(_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute('DROP TRIGGER IF EXISTS raw_events_notify ON raw_events')
    op.execute('DROP FUNCTION IF EXISTS finsync_raw_events_notify()')
