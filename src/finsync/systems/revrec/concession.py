"""Concessions and credits that relate to what was already delivered (606-10-32-42 to 32-45).

Rules:
- A credit line or a change in transaction price may name the part of it that relates to
  goods or services its obligation has already delivered (`DeliveredPart`): units delivered
  (per unit), work performed to date (progress), time elapsed (ratable), the transfer (point
  in time). That part concerns those goods only (606-10-32-44) and, being allocated to
  satisfied performance, is recognised as revenue, or as a reduction of revenue, at once, in
  the period of the change (606-10-32-43): a component of one day, the date of the change.
  A price concession is variable consideration (606-10-32-7(b), 32-11/12): the amount is the
  one the entity has granted, or its constrained estimate.
- The rest of the change concerns what is still to be delivered: the obligation continues
  from what it has recognised by the end of that day, with the rest added to what remains
  (a prospective segment). Nothing left to deliver: the rest is recognised at once too.
- A change that names no delivered part stays on the same basis as at inception
  (`price_change`): what is satisfied (units delivered / units promised, percent complete)
  is caught up at once, the rest spread over what remains.
- Delivered means by the end of the date of the change: a delivery dated that day counts.
- Refused (`AllocationError`): a part of another sign than the change, or more than it; a
  quantity or a delivery for an obligation not measured in units; more units than were
  delivered by then, or a delivery this obligation has not recorded by then; a reduction at
  once larger than the revenue recognised by then (nothing not yet earned can be taken back
  at once); a rest larger than what remains of the price; a usage obligation (its revenue is
  its usage, 606-10-32-40); a price change that does not name exactly one obligation.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta

from finsync.domain.clock import Period
from finsync.domain.invoice import DeliveredPart, DocumentLine
from finsync.domain.money import Money
from finsync.systems.revrec.errors import AllocationError, ContractMismatchError
from finsync.systems.revrec.event import PriceChangeKind, TransactionPriceChanged
from finsync.systems.revrec.obligation import ObligationState, PeriodComponent, Segment
from finsync.systems.revrec.pattern import RecognitionPattern
from finsync.systems.revrec.progress import cumulative, progress, recognised_main
from finsync.systems.revrec.state import RevenueContractState
from finsync.systems.revrec.timegrid import at_midnight

DELIVERY_CAUSE = "606-10-25-31"  # the cause a delivery's revision carries (engine)
CAUSE = "606-10-32-43"


def apply_delivered_change(state: RevenueContractState,
                           event: TransactionPriceChanged) -> RevenueContractState:
    """A change in transaction price with a delivered part, for the one obligation named."""
    part = event.delivered
    assert part is not None  # the engine routes only such changes here
    if event.amount.currency != state.currency:
        raise ContractMismatchError(f"{event.amount} is not in the contract's {state.currency}")
    if len(event.obligation_ids) != 1 or event.service_period is not None:
        raise AllocationError("a change with a delivered part names exactly one obligation "
                              "and no service period (606-10-32-44)")
    (target,) = event.obligation_ids
    changed = concede(state, state.obligation(target), event.event_id, event.amount, part,
                      event.effective_date, event.kind.value,
                      concession=event.kind is PriceChangeKind.PRICE_CONCESSION)
    return state.with_obligations((changed,)).applied(event.event_id)


def concede_line(state: RevenueContractState, ob: ObligationState, event_id: str,
                 line: DocumentLine, on: date, reason: str) -> ObligationState:
    """A credit memo line with a delivered part: the credit lowers the price."""
    part = line.delivered
    assert part is not None  # the credit memo routes only such lines here
    lowered = replace(part, amount=-part.amount)
    return concede(state, ob, f"{event_id}:{line.line_id}", -line.amount, lowered, on,
                   f"credit memo ({reason})", concession=True, event_id=event_id)


def concede(state: RevenueContractState, ob: ObligationState, key: str, change: Money,
            part: DeliveredPart, on: date, what: str, *, concession: bool,
            event_id: str | None = None) -> ObligationState:
    """`change` (signed) of which `part` relates to what `ob` delivered by the end of `on`.
    `concession`: a price concession, so the delivered part is contra revenue (`contra`);
    the rest re-prices what remains, net, as a prospective pool does."""
    _check_part(ob, change, part, on)
    end = at_midnight(on + timedelta(days=1))
    earned = cumulative(ob, state.granularity, end)
    if part.amount.amount < 0 and -part.amount.amount > earned:
        raise AllocationError(f"{ob.obligation_id}: {-part.amount} credited on what was "
                              f"delivered, more than the {Money(earned, ob.currency).quantize()}"
                              f" recognised by {on} ({CAUSE})")
    day = Period(on, on + timedelta(days=1))
    changed = ob.with_component(PeriodComponent(f"{key}:delivered", part.amount, day,
                                                at_midnight(on), concession=concession))
    rest = change - part.amount
    if not rest.is_zero:
        changed = _rest_prospective(state, changed, rest, end)
    detail = (f"{what}: {part.amount} on {_delivered_units(part)} at once, {rest} on what "
              "remains")
    return changed.revised(event_id or key, CAUSE, at_midnight(on), detail)


def _rest_prospective(state: RevenueContractState, ob: ObligationState, rest: Money,
                      end: datetime) -> ObligationState:
    base = recognised_main(ob, state.granularity, end)
    remaining = ob.current.total - base
    complete = progress(ob, ob.current.basis, state.granularity, end) >= 1
    if rest.amount < 0 and -rest.amount > remaining.amount and not complete:
        raise AllocationError(f"{ob.obligation_id}: {-rest} off what remains to be "
                              f"delivered, more than the {remaining} left of its price")
    segment = Segment(ob.current.total + rest, ob.current.basis, effective=end, anchor=end,
                      base=base)
    changed = ob.with_segment(segment)
    if changed.allocated_price.amount < 0:
        raise AllocationError(f"{ob.obligation_id}: allocated price would be "
                              f"{changed.allocated_price}")
    return changed


def _check_part(ob: ObligationState, change: Money, part: DeliveredPart, on: date) -> None:
    if ob.pattern.variable:
        raise AllocationError(f"{ob.obligation_id}: usage is recognised as incurred "
                              "(606-10-32-40); no delivered part to credit")
    if not part.fits(change):
        raise AllocationError(f"{ob.obligation_id}: the delivered part {part.amount} is not a "
                              f"part of the change {change} (same sign, not more)")
    if part.quantity is None and part.delivery_id is None:
        return
    if ob.pattern is not RecognitionPattern.PER_UNIT:
        raise AllocationError(f"{ob.obligation_id} is measured by {ob.pattern.value}, not in "
                              "units: name no quantity or delivery, only the amount")
    delivered = sum(q for day, q in ob.deliveries if day <= on)
    if part.quantity is not None and part.quantity > delivered:
        raise AllocationError(f"{ob.obligation_id}: {part.quantity} units named, "
                              f"{delivered} delivered by {on}")
    if part.delivery_id is not None and not _recorded(ob, part.delivery_id, on):
        raise AllocationError(f"{ob.obligation_id}: no delivery {part.delivery_id!r} "
                              f"recorded by {on}")


def _recorded(ob: ObligationState, delivery_id: str, on: date) -> bool:
    end = at_midnight(on + timedelta(days=1))
    return any(r.event_id == delivery_id and r.cause == DELIVERY_CAUSE
               and r.effective is not None and r.effective < end for r in ob.revisions)


def _delivered_units(part: DeliveredPart) -> str:
    units = "all delivered" if part.quantity is None else f"{part.quantity} units delivered"
    return units if part.delivery_id is None else f"{units} (delivery {part.delivery_id})"
