"""Reconciliation's set reads of the revenue engine (`position_totals`, `contract_prices`)
answer what the contracts' own positions add up to, on every golden case stored on SQLite
and PostgreSQL: at month starts (from the rows) and between them (from the states), with a
contract that has no rows, and the prices in subscription contract id order."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import date

from sqlalchemy import Engine, update

from finsync.domain.money import Money
from finsync.systems.revrec import tables as t
from finsync.systems.revrec.balance import ContractBalances
from finsync.systems.revrec.position import Position, position_of
from finsync.systems.revrec.position_report import CurrencyPositions, PricedContract
from finsync.systems.revrec.service import RevenueService
from finsync.systems.revrec.state import RevenueContractState
from tests.unit.revrec.test_position import CASE_FILES, _days, _renamed, _state, _store


def _summed(positions: list[Position], day: date) -> list[CurrencyPositions]:
    """The oracle: each contract's position added up per currency, in Python."""
    sums: dict[str, list[Money]] = {}
    counts: dict[str, int] = defaultdict(int)
    for p in positions:
        b = p.balances
        held = sums.setdefault(p.currency, [Money.zero(p.currency)] * 6)
        for i, amount in enumerate((b.billed, b.recognised, b.deferred_revenue,
                                    b.contract_asset, b.unbilled_receivable,
                                    sum((v for _, v in p.credits), Money.zero(p.currency)))):
            held[i] = held[i] + amount
        counts[p.currency] += 1
    return [CurrencyPositions(cur, counts[cur], ContractBalances(day, *sums[cur][:5]), sums[cur][5])
            for cur in sorted(sums)]


def _priced(positions: list[Position]) -> list[PricedContract]:
    return sorted((PricedContract(p.subscription_contract_id, p.customer_id,
                                  p.transaction_price, tuple(sorted(p.credits)))
                   for p in positions), key=lambda p: p.subscription_contract_id)


def _check(service: RevenueService, states: list[RevenueContractState], step: int) -> int:
    """Every entity at every `step`-th day of the cases (month starts, the day before them
    and mid-month); how many days fell between month starts."""
    by_entity: dict[str, list[RevenueContractState]] = defaultdict(list)
    for state in states:
        by_entity[state.legal_entity].append(state)
    between = 0
    for entity, mine in by_entity.items():
        for day in _days(states)[::step]:
            between += day.day != 1
            positions = [position_of(s, day) for s in mine]
            assert service.position_totals(entity, day) == _summed(positions, day), day
            prices = [PricedContract(p.subscription_contract_id, p.customer_id,
                                     p.transaction_price, tuple(sorted(p.credits)))
                      for p in service.contract_prices(entity, day)]
            assert prices == _priced(positions), day
    assert service.position_totals("le_nowhere", date(2026, 1, 1)) == []
    assert list(service.contract_prices("le_nowhere", date(2026, 1, 1))) == []
    return between


def test_entity_totals_and_prices_add_up_the_contracts(engine: Engine) -> None:
    states = _renamed([_state(p) for p in CASE_FILES])
    assert _check(_store(engine, states), states, 3) > 0


def test_a_contract_without_rows_counts_from_its_state(engine: Engine) -> None:
    states = _renamed([_state(p) for p in CASE_FILES])
    service = _store(engine, states)
    rc = states[3].revenue_contract_id
    with engine.begin() as conn:  # as if its amounts did not fit minor units
        conn.execute(update(t.contracts).where(t.contracts.c.id == rc).values(
            positions_from=None, positions_to=None, transaction_price_minor=None))
    assert _check(service, states, 7) > 0


def test_prices_follow_code_point_order_not_the_revenue_contract_ids(engine: Engine) -> None:
    """Billing's contracts stream in code-point order of their ids; the engine's prices must
    too (its revenue contract ids are hashes, in another order), upper case before lower."""
    base = _state(CASE_FILES[0])
    ids = ["con_b", "con_A", "con_a", "Con_z", "con_é", "con_B"]
    states = [replace(s, contract=replace(s.contract, id=sub))
              for s, sub in zip(_renamed([base] * len(ids)), ids, strict=True)]
    service = _store(engine, states)
    day = date(2026, 6, 1)
    got = [p.subscription_contract_id
           for p in service.contract_prices(states[0].legal_entity, day)]
    assert got == sorted(ids)
