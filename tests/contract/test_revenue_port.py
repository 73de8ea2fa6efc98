"""The revenue-port contract, run against the embedded engine on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import Engine

from finsync.connectors.embedded.revenue import EmbeddedRevenue
from finsync.connectors.ports import RevenuePort
from finsync.domain.catalog import StandaloneSellingPrice
from finsync.domain.money import Money
from finsync.systems.revrec.migrate import upgrade
from finsync.systems.revrec.service import RevenueService
from tests.contract.revenue_port import SSPS, RevenueHarness, RevenuePortContract


def catalog(product_id: str, on: date) -> StandaloneSellingPrice | None:
    amount = SSPS.get(product_id)
    if amount is None:
        return None
    return StandaloneSellingPrice(product_id, Money.of(amount, "USD"), date(2000, 1, 1))


@pytest.fixture
def harness(engine: Engine) -> RevenueHarness:
    upgrade(engine)
    port: RevenuePort = EmbeddedRevenue("revrec", RevenueService(engine, catalog))
    assert isinstance(port, RevenuePort)
    return RevenueHarness(port)


class TestEmbeddedRevenue(RevenuePortContract):
    pass


def test_revrec_migrations_produce_exactly_its_declared_tables(engine: Engine) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from finsync.systems.revrec.tables import metadata

    upgrade(engine)
    revrec_tables = set(metadata.tables)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={
            "include_name": lambda name, kind, _p: kind != "table" or name in revrec_tables})
        assert compare_metadata(context, metadata) == []
