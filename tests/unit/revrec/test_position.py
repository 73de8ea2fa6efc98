"""Position rows answer exactly what the states answer: every golden case, stored on SQLite and
PostgreSQL, read back as positions, journals, waterfalls and RPO at month starts and between
them, per contract and per legal entity."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, delete, func, select, text, update

from finsync.domain.clock import Period, first_of_next_month
from finsync.domain.money import Money
from finsync.systems.revrec import balances, period_journals, remaining_performance_obligations
from finsync.systems.revrec import service as service_module
from finsync.systems.revrec import tables as t
from finsync.systems.revrec.migrate import MIGRATIONS, upgrade
from finsync.systems.revrec.position import (
    ContractPositions,
    balances_of,
    contract_positions,
    position_of,
)
from finsync.systems.revrec.progress import recognised
from finsync.systems.revrec.schedule import waterfall
from finsync.systems.revrec.serial import dumps_state
from finsync.systems.revrec.service import RevenueService
from finsync.systems.revrec.state import RevenueContractState
from finsync.systems.revrec.timegrid import add_months, at_midnight
from tests.unit.revrec.casecheck import CASES, load

CASE_FILES = sorted(CASES.glob("*.json"))


def _state(path: Path) -> RevenueContractState:
    return load(path).state()


def _month_starts(first: date, last: date) -> list[date]:
    days = [add_months(first, -3)]
    while days[-1] <= add_months(last, 3):
        days.append(first_of_next_month(days[-1]))
    return days


def _row_at(held: ContractPositions, day: date) -> int | None:
    """Index of the row answering month start `day` (None: before the span, zero)."""
    if day < held.first_day:
        return None
    return [r.day for r in held.positions].index(min(day, held.last_day))


@pytest.mark.parametrize("path", CASE_FILES, ids=[p.stem for p in CASE_FILES])
def test_rows_give_the_balances_of_every_month_start(path: Path) -> None:
    state = _state(path)
    held = contract_positions(state)
    assert held is not None
    for day in _month_starts(held.first_day, held.last_day):
        at = _row_at(held, day)
        row = None if at is None else held.positions[at]
        assert balances_of(row, day, state.currency) == balances(state, day), day
        for ordinal, ob in enumerate(state.obligations):
            kept = 0 if row is None else row.obligations[ordinal]
            assert kept == recognised(ob, state.granularity, at_midnight(day)).to_minor()


def test_amount_finer_than_a_minor_unit_keeps_no_rows() -> None:
    state = _state(CASE_FILES[0])
    ob = state.obligations[0]
    odd = replace(ob, segments=(replace(ob.segments[0], total=Money(Decimal("0.001"), "USD")),))
    assert contract_positions(state.with_obligations((odd,))) is None


def _store(engine: Engine, states: list[RevenueContractState]) -> RevenueService:
    upgrade(engine)
    with engine.begin() as conn:
        for state in states:
            service_module._save(conn, None, state, f"evt-{state.revenue_contract_id}")
    return RevenueService(engine, lambda _p, _d: None)


def _renamed(states: list[RevenueContractState]) -> list[RevenueContractState]:
    """Every case as its own contract (the cases reuse contract ids)."""
    return [replace(s, revenue_contract_id=f"rc_{i:02}",
                    contract=replace(s.contract, id=f"con_{i:02}"))
            for i, s in enumerate(states)]


def _days(states: list[RevenueContractState]) -> list[date]:
    spans = [held for s in states if (held := contract_positions(s)) is not None]
    starts = _month_starts(min(h.first_day for h in spans), max(h.last_day for h in spans))
    return sorted({*starts, *(d + timedelta(days=14) for d in starts),
                   *(d - timedelta(days=1) for d in starts)})


def test_stored_positions_and_journals_equal_the_states(engine: Engine) -> None:
    states = _renamed([_state(p) for p in CASE_FILES])
    service = _store(engine, states)
    by_entity: dict[str, list[RevenueContractState]] = defaultdict(list)
    for state in sorted(states, key=lambda s: s.revenue_contract_id):
        by_entity[state.legal_entity].append(state)
    days = _days(states)
    for entity, mine in by_entity.items():
        for day in days:
            assert service.positions(entity, day) == [position_of(s, day) for s in mine], day
        over = list(service.positions_over(entity, days))
        assert over == [[position_of(s, day) for day in days] for s in mine]
        for start, end in pairwise(days):
            period = Period(start, end)
            want = period_journals(mine, entity, period, service.accounts)
            assert service.period_journals(entity, period) == want, period


def test_stored_waterfall_and_rpo_equal_the_states(engine: Engine) -> None:
    states = _renamed([_state(p) for p in CASE_FILES])
    service = _store(engine, states)
    days = _days(states)
    start, end = days[0], days[-1]
    for state in states:
        sub = state.contract.id
        assert service.waterfall(sub, start, end) == waterfall(state, start, end)
        for day in days[::6]:
            assert service.balances(sub, day) == balances(state, day)
            assert (service.remaining_performance_obligations(sub, day)
                    == remaining_performance_obligations(state, day))


def test_entity_reports_add_up_the_contracts(engine: Engine) -> None:
    states = _renamed([_state(p) for p in CASE_FILES])
    service = _store(engine, states)
    days = _days(states)
    start, end = days[0], days[-1]
    for entity in {s.legal_entity for s in states}:
        mine = [s for s in states if s.legal_entity == entity]
        report = service.revenue_by_month(entity, start, end)
        for currency, amounts in report.amounts:
            of = [s for s in mine if s.currency == currency]
            for i, month in enumerate(report.months):
                want = sum((a.amount for s in of
                            for row in waterfall(s, month.start, month.end).rows
                            for a in row.amounts), Decimal(0))
                assert amounts[i].amount == want, (currency, month)
        for day in days[::2]:
            rpo = service.entity_remaining_performance_obligations(entity, day)
            for currency, got in rpo.items():
                each = [remaining_performance_obligations(s, day) for s in mine
                        if s.currency == currency]
                assert got.current.amount == sum((r.current.amount for r in each), Decimal(0))
                assert got.total.amount == sum((r.total.amount for r in each), Decimal(0))


def test_contract_without_rows_is_read_from_its_state(engine: Engine) -> None:
    states = _renamed([_state(p) for p in CASE_FILES])
    service = _store(engine, states)
    with engine.begin() as conn:  # as if its amounts did not fit minor units
        conn.execute(update(t.contracts).where(t.contracts.c.id == "rc_00").values(
            positions_from=None, positions_to=None, transaction_price_minor=None))
    entity = states[0].legal_entity
    mine = sorted((s for s in states if s.legal_entity == entity),
                  key=lambda s: s.revenue_contract_id)
    days = _days(states)[::5]
    for day in days:
        assert service.positions(entity, day) == [position_of(s, day) for s in mine]
    assert list(service.positions_over(entity, days)) == [
        [position_of(s, day) for day in days] for s in mine]


@pytest.mark.parametrize("unheld", [False, True], ids=["rows", "one_from_its_state"])
def test_entity_balances_by_month_add_up_the_contracts(engine: Engine, unheld: bool) -> None:
    """The roll-forward's sums (`balances_by_month`) are each contract's balances at each
    month start added up per currency, and the credits issued in each month; a contract
    without rows counts from its state."""
    states = _renamed([_state(p) for p in CASE_FILES])
    service = _store(engine, states)
    if unheld:  # as `position_store.write` leaves a contract whose amounts do not fit
        with engine.begin() as conn:
            conn.execute(update(t.contracts).where(t.contracts.c.id == "rc_00").values(
                positions_from=None, positions_to=None, transaction_price_minor=None))
            for table in (t.positions, t.obligation_positions, t.obligations, t.billings):
                conn.execute(delete(table).where(table.c.revenue_contract_id == "rc_00"))
    days = _days(states)
    start, end = days[0], days[-1]
    for entity in {s.legal_entity for s in states}:
        found = service.balances_by_month(entity, start, end)
        assert found.days[0] == start.replace(day=1) and len(found.days) > 2
        credited = dict(found.credited)
        for currency, per_day in found.balances:
            of = [s for s in states if s.legal_entity == entity and s.currency == currency]
            for day, got in zip(found.days, per_day, strict=True):
                each = [balances(s, day) for s in of]
                for field in ("billed", "recognised", "deferred_revenue", "contract_asset",
                              "unbilled_receivable"):
                    want = sum((getattr(b, field).amount for b in each), Decimal(0))
                    assert getattr(got, field).amount == want, (currency, day, field)
            for i, (a, b) in enumerate(pairwise(found.days)):
                want = -sum((x.amount.amount for s in of for x in s.billings
                             if x.amount.amount < 0 and a <= x.issued_on < b), Decimal(0))
                assert credited[currency][i].amount == want, (currency, a)


def test_contract_heads_page_through_the_entity(engine: Engine) -> None:
    states = _renamed([_state(p) for p in CASE_FILES])
    service = _store(engine, states)
    entity = states[0].legal_entity
    mine = sorted(s.revenue_contract_id for s in states if s.legal_entity == entity)
    seen: list[str] = []
    after = ""
    while page := service.contract_heads(entity, after, 2):
        assert len(page) <= 2
        seen += [rc for rc, *_ in page]
        after = page[-1][0]
    assert seen == mine


def test_each_change_rewrites_the_contract_rows(engine: Engine) -> None:
    states = _renamed([_state(p) for p in CASE_FILES])
    service = _store(engine, states)
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(t.positions)).scalar_one()
    held = [h for s in states if (h := contract_positions(s)) is not None]
    assert count == sum(len(h.positions) for h in held)
    assert service is not None


def test_upgrade_computes_the_rows_of_every_stored_state(engine: Engine) -> None:
    states = _renamed([_state(p) for p in CASE_FILES])
    upgrade(engine)  # then back to revrec_0001 (the PostgreSQL test database stays at head)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "revrec_0001")
    with engine.begin() as conn:  # as revrec_0001 stored them: the state only
        for state in states:
            conn.execute(text(
                "INSERT INTO revrec_contracts (id, subscription_contract_id, legal_entity, "
                "currency, contract_version, row_version, state) VALUES (:id, :sub, :le, "
                ":cur, 1, 1, :state)"), {
                "id": state.revenue_contract_id, "sub": state.contract.id,
                "le": state.legal_entity, "cur": state.currency, "state": dumps_state(state)})
    upgrade(engine)
    service = RevenueService(engine, lambda _p, _d: None)
    for entity in {s.legal_entity for s in states}:
        mine = sorted((s for s in states if s.legal_entity == entity),
                      key=lambda s: s.revenue_contract_id)
        for day in _days(states)[::4]:
            assert service.positions(entity, day) == [position_of(s, day) for s in mine]
    with engine.connect() as conn:
        unheld = conn.execute(select(func.count()).select_from(t.contracts).where(
            t.contracts.c.positions_from.is_(None))).scalar_one()
    assert unheld == 0
