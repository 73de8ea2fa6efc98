"""A revenue contract's positions at month starts, as rows the reports aggregate in SQL.

Rules:
- A position is what `balance.balances` gives at 00:00 of the first day of a month (billed,
  recognised, deferred revenue, contract asset, unbilled receivable), with each obligation's
  recognised revenue there (cumulative, rounded as the schedules round it).
- The days run from the month of the contract's first fact (a service start, a billing) to
  the first month start on or after the day after its last change. Before the first day
  nothing has happened, so every amount is zero; from the last day on nothing changes any
  more. So the position at any month start d is the row at min(d, last), or zero before the
  first day, and the rows answer every month start exactly.
- A day that is not a month start, inside the span, has no row: it is computed from the
  state (`balances`), as before.
- Amounts are integer minor units of the contract's currency. A contract holding an amount
  finer than its currency's minor unit gets no rows (`None`): it is always read from its
  state, never rounded to fit.
- Obligations are numbered by their place in the state (`ordinal`), so an obligation id that
  appears twice keeps two rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache

from finsync.domain.clock import first_of_next_month
from finsync.domain.errors import DomainError
from finsync.domain.money import Money, total
from finsync.systems.revrec.balance import ContractBalances, balances, balances_given
from finsync.systems.revrec.progress import recognised
from finsync.systems.revrec.schedule import obligation_span, schedule_id_for
from finsync.systems.revrec.state import RevenueContractState
from finsync.systems.revrec.timegrid import at_midnight, month_start


@dataclass(frozen=True, slots=True)
class ObligationRow:
    ordinal: int
    obligation_id: str
    schedule_id: str
    version: int
    allocated_minor: int


@dataclass(frozen=True, slots=True)
class PositionRow:
    """The contract's balances at 00:00 of `day` and each obligation's recognised revenue
    (by ordinal), in minor units."""

    day: date
    billed: int
    recognised: int
    deferred_revenue: int
    contract_asset: int
    unbilled_receivable: int
    obligations: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class BillingRow:
    seq: int
    document_id: str
    obligation_id: str
    issued_on: date
    amount_minor: int


@dataclass(frozen=True, slots=True)
class ContractPositions:
    first_day: date
    last_day: date
    transaction_price_minor: int
    obligations: tuple[ObligationRow, ...]
    positions: tuple[PositionRow, ...]
    billings: tuple[BillingRow, ...]


def is_month_start(day: date) -> bool:
    return day.day == 1


def position_span(state: RevenueContractState) -> tuple[date, date]:
    """(first, last): month starts around every fact and change of the contract."""
    contract = state.contract
    spans = [obligation_span(ob) for ob in state.obligations]
    issued = [b.issued_on for b in state.billings]
    first = min([contract.start_date, *(s.start for s in spans), *issued])
    ends = [contract.end_date, *(s.end for s in spans), *(d + timedelta(days=1) for d in issued)]
    last = max(ends)
    return month_start(first), last if is_month_start(last) else first_of_next_month(last)


def _days(first: date, last: date) -> list[date]:
    days = [first]
    while days[-1] < last:
        days.append(first_of_next_month(days[-1]))
    return days


def contract_positions(state: RevenueContractState) -> ContractPositions | None:
    """The rows of one contract, or None if an amount is finer than a minor unit."""
    try:
        return _positions(state)
    except DomainError:
        return None


def _positions(state: RevenueContractState) -> ContractPositions:
    first, last = position_span(state)
    currency, granularity = state.currency, state.granularity
    rows = []
    for day in _days(first, last):
        at = at_midnight(day)
        per_ob = [recognised(ob, granularity, at) for ob in state.obligations]
        held = balances_given(state, day, total(per_ob, currency))
        rows.append(_row(held, tuple(m.to_minor() for m in per_ob)))
    obligations = tuple(
        ObligationRow(i, ob.obligation_id, schedule_id_for(state.revenue_contract_id,
                                                           ob.obligation_id),
                      ob.version, ob.allocated_price.to_minor())
        for i, ob in enumerate(state.obligations))
    billings = tuple(BillingRow(i, b.document_id, b.obligation_id, b.issued_on,
                                b.amount.to_minor())
                     for i, b in enumerate(state.billings))
    return ContractPositions(first, last, state.transaction_price.to_minor(), obligations,
                             tuple(rows), billings)


def _row(held: ContractBalances, obligations: tuple[int, ...]) -> PositionRow:
    return PositionRow(held.as_of, held.billed.to_minor(), held.recognised.to_minor(),
                       held.deferred_revenue.to_minor(), held.contract_asset.to_minor(),
                       held.unbilled_receivable.to_minor(), obligations)


def money(minor: int, currency: str) -> Money:
    """`Money.from_minor`, sharing one zero per currency (Money is immutable): most rows
    hold zeros, and reports build millions of amounts."""
    if minor == 0:
        return _zero(currency)
    return Money.from_minor(minor, currency)


@cache
def _zero(currency: str) -> Money:
    return Money.zero(currency)


def balances_of(row: PositionRow | None, day: date, currency: str) -> ContractBalances:
    """A stored row as balances at `day` (zero when there is no row: before the first)."""
    if row is None:
        zero = _zero(currency)
        return ContractBalances(day, zero, zero, zero, zero, zero)
    return ContractBalances(day, money(row.billed, currency), money(row.recognised, currency),
                            money(row.deferred_revenue, currency),
                            money(row.contract_asset, currency),
                            money(row.unbilled_receivable, currency))


@dataclass(frozen=True, slots=True)
class Position:
    """One revenue contract's position before a day (00:00): its balances, transaction price
    and the credit memos taken off its billings (positive, by document)."""

    revenue_contract_id: str
    subscription_contract_id: str
    customer_id: str
    currency: str
    transaction_price: Money
    balances: ContractBalances
    credits: tuple[tuple[str, Money], ...] = ()


def position_of(state: RevenueContractState, day: date) -> Position:
    """The position computed from the state (what the rows hold, for any day)."""
    credits: dict[str, Money] = {}
    for billing in state.billings:
        if billing.amount.amount < 0 and billing.issued_on < day:
            credits[billing.document_id] = credits.get(
                billing.document_id, Money.zero(state.currency)) - billing.amount
    return Position(state.revenue_contract_id, state.contract.id, state.contract.customer_id,
                    state.currency, state.transaction_price, balances(state, day),
                    tuple(sorted(credits.items())))
