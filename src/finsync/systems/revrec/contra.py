"""Contra revenue and refund liabilities: gross and net revenue, and what is owed back.

Rules:
- A price concession lowers revenue (606-10-32-42/43: "a reduction of revenue"): credit memos
  treated as concessions, refunds that name an obligation (a concession paid in cash) and
  price changes of kind `price_concession` (SLA credits). Re-estimated variable
  consideration, volume true-ups, billing corrections and voids are not concessions: they
  move revenue itself.
- The engine tracks each concession inside the amount it changes: a segment's `concession`
  is the part of its total that is concessions, `concession_base` the part of its base; a
  component marked `concession` is one wholly. Recognition is linear in (total, base), so
  the concession part recognised by an instant is the segment's formula applied to
  (concession, concession_base): the reduction is recognised exactly as the price it
  lowered would have been.
- A segment that holds no concession of its own (None) and has an anchor (the prospective
  pool of a modification, 606-10-25-13(a)) keeps the reduction recognised up to its anchor
  and recognises no more of it: the remaining consideration it spreads is net. Without an
  anchor, None is no concession.
- Net revenue is the engine's recognised revenue (rounded per obligation, `progress`); the
  contra revenue is rounded the same way, half-even per obligation at the same instant, and
  gross = net + contra, so net = gross - contra to the cent by construction.
- Refund liability (606-10-32-10): consideration billed beyond the transaction price in
  force at a date (the price a concession lowered but no credit memo has yet given back) is
  owed to the customer, not deferred revenue: it is shown apart, taken out of deferred
  revenue (never more than deferred revenue holds).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal

from finsync.domain.money import Money, total
from finsync.systems.revrec.balance import ContractBalances, billed_to
from finsync.systems.revrec.obligation import ObligationState, Segment
from finsync.systems.revrec.pattern import Granularity
from finsync.systems.revrec.progress import components_cumulative, progress, segment_in_force
from finsync.systems.revrec.state import RevenueContractState
from finsync.systems.revrec.timegrid import at_midnight

_ONE = Decimal(1)
_ZERO = Decimal(0)


def concession_parts(ob: ObligationState, segment: Segment,
                     granularity: Granularity) -> tuple[Decimal, Decimal]:
    """(concession part of the total, of the base) of one of `ob`'s segments."""
    if segment.concession is not None:
        base = segment.concession_base
        return segment.concession.amount, _ZERO if base is None else base.amount
    if segment.anchor is None:
        return _ZERO, _ZERO
    earlier = _in_force_before(ob, segment, segment.anchor)
    if earlier is None:
        return _ZERO, _ZERO
    held = _main(ob, granularity, segment.anchor, earlier)
    return held, held


def _in_force_before(ob: ObligationState, segment: Segment, at: datetime) -> Segment | None:
    """The segment in force at `at` among those applied before `segment`."""
    index = next(i for i, s in enumerate(ob.segments) if s is segment)
    for earlier in reversed(ob.segments[:index]):
        if earlier.effective is None or earlier.effective < at:
            return earlier
    return None


def _main(ob: ObligationState, granularity: Granularity, at: datetime,
          segment: Segment | None = None) -> Decimal:
    """The concession part of the main allocation recognised by `at` (signed, unrounded),
    under the segment in force then (or the one given)."""
    segment = segment or segment_in_force(ob, at)
    part, base = concession_parts(ob, segment, granularity)
    if part == 0 and base == 0:
        return _ZERO
    done = progress(ob, segment.basis, granularity, at)
    if segment.anchor is None or segment.base is None:
        return part * done
    start = progress(ob, segment.basis, granularity, segment.anchor)
    if start >= _ONE:
        return part
    return base + (part - base) * (done - start) / (_ONE - start)



def contra_of(ob: ObligationState, granularity: Granularity, at: datetime) -> Money:
    """Revenue of `ob` reduced by concessions by `at` (positive: a reduction), rounded as
    its recognised revenue is."""
    if not has_concession(ob):
        return Money.zero(ob.currency)
    signed = _main(ob, granularity, at) + components_cumulative(ob, granularity, at,
                                                                concessions_only=True)
    return Money(-signed, ob.currency).quantize()


def has_concession(ob: ObligationState) -> bool:
    return (any(s.concession is not None for s in ob.segments)
            or any(c.concession for c in ob.components))


def contra_to(state: RevenueContractState, day: date) -> Money:
    """Contra revenue of the contract for everything before `day` (00:00)."""
    at = at_midnight(day)
    return total([contra_of(ob, state.granularity, at) for ob in state.obligations],
                 state.currency)


def conceded(ob: ObligationState, segment: Segment, share: Money,
             granularity: Granularity) -> Segment:
    """`segment` (a copy of `ob`'s current one with `share` already in its total) with
    `share` recorded as a concession."""
    part, base = concession_parts(ob, ob.current, granularity)
    currency = share.currency
    return replace(segment, concession=Money(part, currency) + share,
                   concession_base=Money(base, currency))


def price_at(state: RevenueContractState, day: date) -> Money:
    """The transaction price in force at 00:00 of `day`: each obligation's segment then
    and its components effective before (an obligation a later modification added is not
    in it yet)."""
    at = at_midnight(day)
    amounts = []
    for ob in state.obligations:
        first = ob.segments[0].effective
        if first is not None and first >= at:
            continue
        amounts.append(segment_in_force(ob, at).total)
        amounts += [c.amount for c in ob.components
                    if c.effective is None or c.effective < at]
    return total(amounts, state.currency)


def refund_liability(state: RevenueContractState, day: date,
                     held: ContractBalances) -> Money:
    """Billed beyond the price in force at `day`, within the deferred revenue `held`."""
    owed = billed_to(state, day) - price_at(state, day)
    if owed.amount <= 0:
        return Money.zero(state.currency)
    return owed if owed < held.deferred_revenue else held.deferred_revenue
