"""Golden revenue cases: JSON case files (docs/revrec/case-files.md) whose `expect` section
holds figures worked out by hand in docs/revrec/cases.md; `check_case` compares every one.

`expect` keys: `transaction_price`; `allocated` {obligation: amount}; `decisions` [{treatment,
paragraph, catch_up {obligation: amount}}] in order; `schedule` {obligation: {"YYYY-MM":
amount, "version": n}}; `balances` {date: {field: amount}}; `rpo` {date: {current,
non_current}}; `journal` {"YYYY-MM": {"debit|credit:<account>": amount}}.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from finsync.domain.clock import Period
from finsync.domain.money import Money
from finsync.systems.revrec import (
    RevenueContractState,
    balances,
    obligation_schedule,
    period_journal,
    remaining_performance_obligations,
)
from finsync.systems.revrec.casefile import RevenueCase, load_case
from finsync.systems.revrec.timegrid import add_months

CASES = Path(__file__).parent / "cases"
MoneyOf = Callable[[str], Money]
ACCOUNTS = {"deferred_revenue": "2400", "revenue": "4000", "contract_asset": "1250",
            "unbilled_receivable": "1260"}


def load(path: Path) -> RevenueCase:
    return load_case(path.read_text())


def check_case(path: Path) -> None:
    case = load(path)
    state = case.state()
    expect: dict[str, Any] = dict(case.expect)
    money = _money(state.currency)
    failures = [*_check_prices(money, state, expect), *_check_decisions(money, state, expect),
                *_check_schedules(money, state, expect), *_check_positions(money, state, expect)]
    assert not failures, f"{path.name}:\n" + "\n".join(failures)


def _money(currency: str) -> MoneyOf:
    return lambda text: Money.of(text, currency)


def _diff(what: str, got: object, want: object) -> list[str]:
    return [] if got == want else [f"{what}: got {got}, expected {want}"]


def _check_prices(money: MoneyOf, state: RevenueContractState,
                  expect: dict[str, Any]) -> list[str]:
    out = []
    if "transaction_price" in expect:
        out += _diff("transaction price", state.transaction_price,
                     money(expect["transaction_price"]))
    for ob_id, amount in expect.get("allocated", {}).items():
        out += _diff(f"allocated {ob_id}", state.obligation(ob_id).allocated_price,
                     money(amount))
    return out


def _check_decisions(money: MoneyOf, state: RevenueContractState,
                     expect: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for got, want in zip(state.decisions, expect.get("decisions", []), strict=True):
        out += _diff("treatment", got.treatment.value, want["treatment"])
        out += _diff("paragraph", got.paragraph, want["paragraph"])
        for ob_id, amount in want.get("catch_up", {}).items():
            out += _diff(f"catch-up {ob_id}", dict(got.catch_up).get(ob_id), money(amount))
    return out


def _check_schedules(money: MoneyOf, state: RevenueContractState,
                     expect: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for ob_id, months in expect.get("schedule", {}).items():
        sched = obligation_schedule(state, ob_id)
        sched.to_revenue_schedule()
        by_month = {f"{li.period.start:%Y-%m}": li.amount for li in sched.lines}
        for month, amount in months.items():
            if month == "version":
                out += _diff(f"{ob_id} version", sched.version, amount)
            else:
                out += _diff(f"{ob_id} {month}", by_month.get(month, money("0")),
                             money(amount))
    return out


def _check_positions(money: MoneyOf, state: RevenueContractState,
                     expect: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for day, want in expect.get("balances", {}).items():
        got = balances(state, date.fromisoformat(day))
        for field, amount in want.items():
            out += _diff(f"{field} at {day}", getattr(got, field), money(amount))
    for day, want in expect.get("rpo", {}).items():
        rpo = remaining_performance_obligations(state, date.fromisoformat(day))
        out += _diff(f"RPO current at {day}", rpo.current, money(want["current"]))
        out += _diff(f"RPO non-current at {day}", rpo.non_current, money(want["non_current"]))
    for month, want in expect.get("journal", {}).items():
        start = date.fromisoformat(f"{month}-01")
        entry = period_journal([state], state.legal_entity,
                               Period(start, add_months(start, 1)), ACCOUNTS)
        lines = {} if entry is None else {
            f"{li.side.value}:{li.account}": li.amount for li in entry.lines}
        out += _diff(f"journal {month}", lines, {k: money(v) for k, v in want.items()})
    return out
