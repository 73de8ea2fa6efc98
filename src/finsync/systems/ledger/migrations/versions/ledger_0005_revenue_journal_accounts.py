"""the revenue journal roles' accounts (contra revenue, refund liability) in every chart

Revision ID: ledger_0005
Revises: ledger_0004
Create Date: 2026-12-06 13:30:00

The revenue engine books concessions to a contra revenue account and consideration owed
back to a refund liability. Both roles are optional (a chart without them still loads), but
each entity's chart that lacks one gets the default chart's account for it, under the
default code, or under `<code>-1`, `<code>-2` … when its chart already uses that code. The
accounts are written as they are in this revision. The revenue engine's journals name
account codes (`[revenue.accounts]`, default 4910 and 2450): an entity whose account went
under another code needs `[revenue.entity_accounts.<entity>]` set to it, or its concessions
land on the account that already held the default code.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'ledger_0005'
down_revision = 'ledger_0004'
branch_labels = None
depends_on = None

# role -> (code, name, type), as the default chart had them at this revision.
ADDED = {
    "contra_revenue": ("4910", "Contra revenue: concessions", "revenue"),
    "refund_liability": ("2450", "Refund liability", "liability"),
}
ACCOUNTS = sa.table("ledger_accounts", sa.column("entity", sa.String),
                    sa.column("code", sa.String), sa.column("name", sa.String),
                    sa.column("type", sa.String), sa.column("role", sa.String))
ENTITIES = sa.table("ledger_entities", sa.column("id", sa.String))


def _free(code: str, taken: set[str]) -> str:
    if code not in taken:
        return code
    n = 1
    while f"{code}-{n}" in taken:
        n += 1
    return f"{code}-{n}"


def upgrade() -> None:
    conn = op.get_bind()
    entities = [str(e) for (e,) in conn.execute(sa.select(ENTITIES.c.id))]
    rows = []
    for entity in entities:
        have = conn.execute(sa.select(ACCOUNTS.c.code, ACCOUNTS.c.role)
                            .where(ACCOUNTS.c.entity == entity)).all()
        taken = {str(code) for code, _ in have}
        roles = {str(role) for _, role in have if role}
        for role, (code, name, kind) in ADDED.items():
            if role in roles:
                continue
            free = _free(code, taken)
            taken.add(free)
            rows.append({"entity": entity, "code": free, "name": name, "type": kind,
                         "role": role})
    if rows:
        op.bulk_insert(ACCOUNTS, rows)


def downgrade() -> None:
    # Only accounts nothing posted to can go (a posted line names its account).
    lines = sa.table("ledger_lines", sa.column("entity", sa.String),
                     sa.column("account", sa.String))
    used = sa.select(lines.c.account).where(lines.c.entity == ACCOUNTS.c.entity)
    op.execute(ACCOUNTS.delete().where(ACCOUNTS.c.role.in_(list(ADDED)),
                                       ACCOUNTS.c.code.not_in(used)))
