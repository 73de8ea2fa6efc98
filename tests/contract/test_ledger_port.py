"""The ledger-port contract, run against the embedded ledger on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from finsync.connectors.embedded.ledger import EmbeddedLedger
from finsync.domain.journal import PeriodStatus
from tests.contract.ledger_port import LedgerBooksContract, LedgerHarness, LedgerPortContract
from tests.ledgerkit import ledger_service


@pytest.fixture
def harness(engine: Engine) -> LedgerHarness:
    service = ledger_service(engine)
    return LedgerHarness(
        EmbeddedLedger("ledger", service),
        lambda entity, period: service.set_period_status(entity, period, PeriodStatus.CLOSED,
                                                         "controller"),
        revenue_account="4000", deferred_account="2400")


class TestEmbeddedLedger(LedgerPortContract, LedgerBooksContract):
    pass


def test_ledger_migrations_produce_exactly_its_declared_tables(engine: Engine) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from finsync.systems.ledger.migrate import upgrade
    from finsync.systems.ledger.tables import metadata

    upgrade(engine)
    ledger_tables = set(metadata.tables)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={
            "include_name": lambda name, kind, _p: kind != "table" or name in ledger_tables})
        assert compare_metadata(context, metadata) == []
