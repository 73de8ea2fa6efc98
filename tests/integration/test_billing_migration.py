"""Billing's migrations: the schema they make is the one `tables` declares (both backends),
and billing_0002 carries a database written before it (SQLite, a fresh file at
billing_0001): document numbers seeded from the documents, the clock's next step set to a
day no later than the true one, and the next command numbering and positioning after the
stored rows."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, insert, select

from finsync.storage.db import make_engine
from finsync.systems.billing import store, tables
from finsync.systems.billing.amendment import AmendSubscription
from finsync.systems.billing.edit import AddSeats
from finsync.systems.billing.handler import handle
from finsync.systems.billing.migrate import upgrade
from finsync.systems.billing.outcome import Outcome
from finsync.systems.billing.state import BillingState
from tests.unit.billing.servicekit import CONFIG, REGISTER, UPGRADE, create, service


def test_migrations_make_exactly_the_declared_billing_schema(engine: Engine) -> None:
    upgrade(engine)
    ours = set(tables.metadata.tables)

    def billing(name: str | None, kind: str, _parent: object) -> bool:
        return kind != "table" or name in ours

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": billing})
        assert compare_metadata(context, tables.metadata) == []


def test_a_database_written_before_0002_numbers_and_bills_on(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine, "billing_0001")
    empty = BillingState(CONFIG)
    outcome = Outcome(empty)
    for command in (REGISTER, create()):
        outcome = outcome.then(handle(outcome.state, command))
    with engine.begin() as conn:  # the rows the service wrote then: no next_step_on column
        for table, rows in store.changes(empty, outcome.state).inserts.items():
            if table is tables.line_taxes:  # billing_0003's
                continue
            conn.execute(insert(table), [
                {**{k: v for k, v in row.items() if k != "next_step_on"}, "position": i}
                if table in store.POSITIONED else row for i, row in enumerate(rows)])
    upgrade(engine)
    with engine.connect() as conn:
        assert conn.execute(select(tables.document_numbers.c.kind,
                                   tables.document_numbers.c.last_number)).all() == \
            [("invoice", 1)]
        assert conn.execute(select(tables.subscriptions.c.next_step_on)).scalar_one() == \
            date(2026, 1, 1)  # the lower bound: billed through the start, arrears too
    applied = service(engine).execute(UPGRADE)
    [invoice] = [e.event.invoice for e in applied.emitted if hasattr(e.event, "invoice")]
    assert invoice.number == "INV-le_us-000002"
    with engine.connect() as conn:
        assert sorted(conn.execute(select(tables.invoices.c.position)).scalars()) == [0, 1]
    service(engine).execute(AmendSubscription("amd_more", "con_acme_2026", date(2026, 6, 1),
                                              (AddSeats("ln_seats", 1),)))
    engine.dispose()
