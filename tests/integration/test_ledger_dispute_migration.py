"""Migrations ledger_0004 and ledger_0005: a chart made before the dispute roles (the revenue
journal roles) gets their accounts, on both databases, without taking a code the chart
already uses."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, insert, select, text

from finsync.storage.db import make_engine, normalise_url
from finsync.systems.ledger import records
from finsync.systems.ledger import tables as t
from finsync.systems.ledger.chart import DEFAULT_CHART, Role, parse_chart
from finsync.systems.ledger.migrate import upgrade
from tests.conftest import create_database

DISPUTE_ROLES = (Role.DISPUTE_RECEIVABLE, Role.DISPUTE_FEES, Role.CHARGEBACK_LOSSES)
REVENUE_JOURNAL_ROLES = (Role.CONTRA_REVENUE, Role.REFUND_LIABILITY)  # ledger_0005


def _old_chart(engine: Engine, entity: str, taken: str | None = None,
               roles: tuple[Role, ...] = (*DISPUTE_ROLES, *REVENUE_JOURNAL_ROLES)) -> None:
    """The default chart without `roles` (the dispute roles: as ledger_0003 left it); `taken`
    adds an account of the entity's own under that code."""
    old = [a for a in parse_chart(DEFAULT_CHART.read_text()).accounts
           if a.role not in roles]
    rows = [{"entity": entity, "code": a.code, "name": a.name, "type": a.type.value,
             "role": a.role.value if a.role else None} for a in old]
    if taken is not None:
        rows.append({"entity": entity, "code": taken, "name": "Petty cash", "type": "asset",
                     "role": None})
    with engine.begin() as conn:
        conn.execute(insert(t.entities), {"id": entity, "name": entity,
                                          "functional_currency": "USD",
                                          "account_map": json.dumps({})})
        conn.execute(insert(t.accounts), rows)


@pytest.fixture
def blank(db_url: str, tmp_path: Path) -> Iterator[Engine]:
    """A database of its own with no ledger schema yet (the shared PostgreSQL test database
    keeps every schema at head between tests)."""
    if db_url.startswith("sqlite"):
        engine = make_engine(f"sqlite:///{tmp_path / 'blank.db'}")
        yield engine
        engine.dispose()
        return
    admin = create_engine(normalise_url(db_url), isolation_level="AUTOCOMMIT")
    name = f"{admin.url.database}_ledger_0004"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        create_database(conn, name)  # waits while another session is in template1
    engine = make_engine(admin.url.set(database=name).render_as_string(hide_password=False))
    yield engine
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_old_charts_get_the_dispute_accounts(blank: Engine) -> None:
    engine = blank
    upgrade(engine, "ledger_0003")
    _old_chart(engine, "le_a")
    _old_chart(engine, "le_b", taken="1270")
    upgrade(engine)
    with engine.connect() as conn:
        charts = {e: records.load_chart(conn, e) for e in ("le_a", "le_b")}
        names = dict(conn.execute(select(t.accounts.c.code, t.accounts.c.name)
                                  .where(t.accounts.c.entity == "le_b")).all())
    assert [charts["le_a"].code_for(r) for r in DISPUTE_ROLES] == ["1270", "6500", "6510"]
    assert [charts["le_b"].code_for(r) for r in DISPUTE_ROLES] == ["1270-1", "6500", "6510"]
    assert names["1270"] == "Petty cash"  # the entity's own account stays as it was


def test_old_charts_get_the_revenue_journal_accounts(blank: Engine) -> None:
    """ledger_0005: contra revenue (4910) and the refund liability (2450), beside a code the
    chart already uses."""
    engine = blank
    upgrade(engine, "ledger_0004")
    _old_chart(engine, "le_a", roles=REVENUE_JOURNAL_ROLES)
    _old_chart(engine, "le_b", taken="2450", roles=REVENUE_JOURNAL_ROLES)
    upgrade(engine)
    with engine.connect() as conn:
        charts = {e: records.load_chart(conn, e) for e in ("le_a", "le_b")}
    assert [charts["le_a"].code_for(r) for r in REVENUE_JOURNAL_ROLES] == ["4910", "2450"]
    assert [charts["le_b"].code_for(r) for r in REVENUE_JOURNAL_ROLES] == ["4910", "2450-1"]
    assert charts["le_a"].get("4910").type.value == "revenue"
    assert charts["le_a"].get("2450").type.value == "liability"
