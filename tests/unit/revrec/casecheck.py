"""Golden revenue cases: JSON case files (docs/revrec/case-files.md) whose `expect` section
holds figures worked out by hand in docs/revrec/cases.md; `check_case` compares every one.

`expect` keys: `transaction_price`; `allocated` {obligation: amount}; `decisions` [{treatment,
paragraph, catch_up {obligation: amount}}] in order; `schedule` {obligation: {"YYYY-MM":
amount, "version": n}}; `balances` {date: {field: amount}}; `rpo` {date: {current,
non_current}}; `journal` {"YYYY-MM": {"debit|credit:<account>": amount}} (accounts
`CASE_ACCOUNTS`); `contra` {"YYYY-MM": contra revenue of the month}; `refund_liability`
{date: amount}; `close` {period, after, in, adjustment {"debit|credit:<account>": amount},
changes [event ids]}: the period's journal stored after event `after`, the adjustment lines
of the journal of `in` for it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from finsync.domain.clock import Period, month_period
from finsync.domain.journal import JournalEntry
from finsync.domain.money import Money
from finsync.systems.revrec import (
    RevenueContractState,
    balances,
    obligation_schedule,
    period_journal,
    remaining_performance_obligations,
)
from finsync.systems.revrec.adjustment import adjustments
from finsync.systems.revrec.casefile import RevenueCase, load_case
from finsync.systems.revrec.contra import contra_to, refund_liability
from finsync.systems.revrec.engine import apply_event, book_contract
from finsync.systems.revrec.journal import contract_movement, journal_of
from finsync.systems.revrec.journal_store import minors
from finsync.systems.revrec.timegrid import add_months

CASES = Path(__file__).parent / "cases"
MoneyOf = Callable[[str], Money]
ACCOUNTS = {"deferred_revenue": "2400", "revenue": "4000", "contract_asset": "1250",
            "unbilled_receivable": "1260"}
# The journals of the case files: concessions on their own contra revenue account and a
# refund liability apart, as the service's defaults book them.
CASE_ACCOUNTS = {**ACCOUNTS, "contra_revenue": "4910", "refund_liability": "2450"}


def load(path: Path) -> RevenueCase:
    return load_case(path.read_text())


def check_case(path: Path) -> None:
    case = load(path)
    state = case.state()
    expect: dict[str, Any] = dict(case.expect)
    money = _money(state.currency)
    failures = [*_check_prices(money, state, expect), *_check_decisions(money, state, expect),
                *_check_schedules(money, state, expect), *_check_positions(money, state, expect),
                *_check_contra(money, state, expect), *_check_close(money, case, state, expect)]
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
                               Period(start, add_months(start, 1)), CASE_ACCOUNTS)
        lines = _lines(entry)
        out += _diff(f"journal {month}", lines, {k: money(v) for k, v in want.items()})
    return out


def _lines(entry: JournalEntry | None) -> dict[str, Money]:
    found: dict[str, Money] = {}
    for li in () if entry is None else entry.lines:
        key = f"{li.side.value}:{li.account}"
        found[key] = found[key] + li.amount if key in found else li.amount
    return found


def _check_contra(money: MoneyOf, state: RevenueContractState,
                  expect: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for month, amount in expect.get("contra", {}).items():
        start = date.fromisoformat(f"{month}-01")
        got = contra_to(state, add_months(start, 1)) - contra_to(state, start)
        out += _diff(f"contra revenue {month}", got, money(amount))
    for day, amount in expect.get("refund_liability", {}).items():
        at = date.fromisoformat(day)
        out += _diff(f"refund liability at {day}",
                     refund_liability(state, at, balances(state, at)), money(amount))
    return out


def _check_close(money: MoneyOf, case: RevenueCase, state: RevenueContractState,
                 expect: dict[str, Any]) -> list[str]:
    """The closed period's journal stored from the state after event `after`; what the
    engine books for it in period `in` once the later events are applied."""
    close = expect.get("close")
    if close is None:
        return []
    ids = [item.event.event_id for item in case.events]
    upto = ids.index(close["after"]) + 1
    before = book_contract(case.booked)
    for item in case.events[:upto]:
        before = apply_event(before, item.event)
    period = month_period(close["period"])
    stored = contract_movement(before, period)
    booked = {(state.revenue_contract_id, period.start): minors(stored.movement)}
    later = [(n, event_id) for n, event_id in enumerate(ids[upto:], start=1)]
    found = adjustments(state, [(period, 0)], booked, later)
    entries = journal_of(found, state.legal_entity, month_period(close["in"]), CASE_ACCOUNTS)
    out = _diff(f"adjustment in {close['in']}", _lines(entries[0] if entries else None),
                {k: money(v) for k, v in close["adjustment"].items()})
    for held in found:
        out += _diff("adjusted period", held.adjusts, close["period"])
        out += _diff("changes", list(held.changes), close["changes"])
    return out
