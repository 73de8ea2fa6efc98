"""Contract balances: deferred revenue, contract asset and unbilled receivable.

Rules:
- Balances at a date are at 00:00 of that date: they include every fact dated before it.
  Pass a period's end to get its closing balances.
- A contract is presented net (606-10-45-1): net = recognised - billed.
  - net <= 0: a contract liability, deferred revenue = billed - recognised.
  - net > 0: revenue ahead of billing. The part the customer already owes for what has been
    delivered at the contract's own prices (stated price x progress, plus usage and other
    components, less what each obligation has billed) is an unbilled receivable - only time
    stands between it and an invoice; the rest (e.g. allocation moved revenue onto a good
    delivered first) is a contract asset, conditional on further performance (606-10-45-3).
- Identity, exact to the cent: billed = recognised + deferred revenue - contract asset -
  unbilled receivable. Period journals rely on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from finsync.domain.money import Money, total
from finsync.systems.revrec.obligation import ObligationState
from finsync.systems.revrec.progress import components_cumulative, progress, segment_in_force
from finsync.systems.revrec.schedule import recognised_to
from finsync.systems.revrec.state import RevenueContractState
from finsync.systems.revrec.timegrid import at_midnight


@dataclass(frozen=True, slots=True)
class ContractBalances:
    as_of: date
    billed: Money
    recognised: Money
    deferred_revenue: Money
    contract_asset: Money
    unbilled_receivable: Money


def billed_to(state: RevenueContractState, day: date, obligation_id: str | None = None) -> Money:
    at = at_midnight(day)
    return total([b.amount for b in state.billings
                  if at_midnight(b.issued_on) < at
                  and obligation_id in (None, b.obligation_id)], state.currency)


def _invoiceable(state: RevenueContractState, ob: ObligationState, day: date) -> Money:
    at = at_midnight(day)
    segment = segment_in_force(ob, at)
    earned = ob.stated_price.amount * progress(ob, segment.basis, state.granularity, at)
    earned += components_cumulative(ob, state.granularity, at)
    return Money(earned, state.currency).quantize()


def balances(state: RevenueContractState, day: date) -> ContractBalances:
    return balances_given(state, day, recognised_to(state, day))


def balances_given(state: RevenueContractState, day: date, revenue: Money) -> ContractBalances:
    """`balances` when the revenue recognised before `day` is already known."""
    billed = billed_to(state, day)
    net = revenue - billed
    zero = Money.zero(state.currency)
    if net.amount <= 0:
        return ContractBalances(day, billed, revenue, -net, zero, zero)
    owed = zero
    for ob in state.obligations:
        gap = _invoiceable(state, ob, day) - billed_to(state, day, ob.obligation_id)
        owed = owed + (gap if gap.amount > 0 else zero)
    unbilled = owed if owed < net else net
    return ContractBalances(day, billed, revenue, zero, net - unbilled, unbilled)
