"""The canonical order of a revenue contract's events, and rebuilding a contract in it.

Rules:
- The engine's result for a set of events is defined as applying them in the canonical order:
  effective date, then the precedence of their kinds on one day, then (modifications) the
  contract version they make, then event id. Arrival order never enters it. Contract
  versions apply in order: an amendment dated before the version it follows takes that
  version's date as its place (not its measurement date).
- Precedence on one day (`Precedence`), and why:
  1. estimates: a price change (re-estimate, concession, true-up) and a percent complete
     or costs incurred reported. An estimate in force on the day of a modification is part
     of what the modification starts from: 606-10-32-45 sends only a change *after* the modification
     through 32-45(a)/(b), and ASC 606 Example 6 accounts for it as "if that amount of
     variable consideration had been estimated and included in the transaction price at the
     time of the contract modification". So a same-day price change catches up on what was
     satisfied before that day (606-10-32-43) and only its unsatisfied rest joins a
     25-13(a) pool; a 25-13(b) catch-up is measured on the day's measure of progress;
  2. the modification (25-12/25-13), version order; on the same footing an approved
     unpriced change order (25-11, a change in scope) and a customer option exercised or
     lapsed (it creates or ends an obligation that the day's invoices may name);
  3. a price change naming the modification it follows (`promised_before`, 606-10-32-45(a)):
     by definition after that modification;
  4. billing documents (invoice, credit memo, refund): issued under the contract as it
     stands that day, so a renewal's first invoice bills the renewed lines;
  5. occurrences (usage, units delivered): counted from just after D's midnight, so they
     change no measurement made on D, and may name what that day's modification added;
  6. a credit or price change on what was already delivered (`concession`: a part stated as
     `delivered`): it relates to what was delivered by the end of its day, that day's
     deliveries included, so it comes after them.
- A rebuild (`engine.rebuild`) replays the events from a baseline (the state at booking, or
  the state stored before the contract's events were kept) in canonical order, then carries
  the schedule versions on from the state it replaces (`carry_versions`). Versions stay
  monotonic: an obligation the rebuild leaves exactly as it was keeps its revisions; one it
  changes keeps the revisions it shares with the old state (same events, same order) and
  numbers the rest after the highest version already given out, so a reference handed out
  before (`sch_…@vN`) never comes to mean another schedule.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import date
from enum import IntEnum

from finsync.systems.revrec.event import (
    ChangeOrderApproved,
    ContractModified,
    CostsReported,
    CreditMemoApplied,
    InvoiceRecorded,
    OptionExercised,
    OptionLapsed,
    ProgressReported,
    RefundRecorded,
    RevenueEvent,
    TransactionPriceChanged,
    UnitsDelivered,
    UsageRecorded,
)
from finsync.systems.revrec.modification import CHANGE_ORDER_PREFIX
from finsync.systems.revrec.obligation import ObligationState, Revision
from finsync.systems.revrec.state import RevenueContractState
from finsync.systems.revrec.timegrid import at_midnight

__all__ = ["OrderKey", "Precedence", "canonical", "carry_versions", "effective_date",
           "keyed", "modification_floor", "order_key"]


class Precedence(IntEnum):
    ESTIMATE = 1
    MODIFICATION = 2
    PRICE_CHANGE_AFTER_MODIFICATION = 3
    DOCUMENT = 4
    OCCURRENCE = 5
    ON_DELIVERED = 6


OrderKey = tuple[date, int, int, str]


def effective_date(event: RevenueEvent) -> date:
    match event:
        case ContractModified():
            return event.amendment.effective_date
        case TransactionPriceChanged():
            return event.effective_date
        case InvoiceRecorded():
            return event.invoice.issue_date
        case CreditMemoApplied():
            return event.memo.issue_date
        case RefundRecorded():
            return event.refund.issued_on
        case UsageRecorded():
            return event.usage.occurred_on
        case UnitsDelivered():
            return event.delivered_on
        case ProgressReported() | CostsReported():
            return event.as_of
        case ChangeOrderApproved():
            return event.approved_on
        case OptionExercised():
            return event.exercised_on
        case OptionLapsed():
            return event.lapsed_on


def precedence(event: RevenueEvent) -> Precedence:
    match event:
        case ContractModified() | ChangeOrderApproved() | OptionExercised() | OptionLapsed():
            return Precedence.MODIFICATION
        case TransactionPriceChanged() if event.delivered is not None:
            return Precedence.ON_DELIVERED
        case CreditMemoApplied() if any(li.delivered for li in event.memo.lines):
            return Precedence.ON_DELIVERED
        case TransactionPriceChanged() if event.promised_before is not None:
            return Precedence.PRICE_CHANGE_AFTER_MODIFICATION
        case TransactionPriceChanged() | ProgressReported() | CostsReported():
            return Precedence.ESTIMATE
        case InvoiceRecorded() | CreditMemoApplied() | RefundRecorded():
            return Precedence.DOCUMENT
        case UsageRecorded() | UnitsDelivered():
            return Precedence.OCCURRENCE


def order_key(event: RevenueEvent, floor: date | None = None) -> OrderKey:
    """`floor`, for a modification: the latest effective date of the contract's earlier
    versions (`modification_floor`). Versions apply in order, so an amendment dated before
    the version it follows takes its place right after that version."""
    on = effective_date(event)
    version = 0
    if isinstance(event, ContractModified):
        version = event.amendment.version
        on = on if floor is None else max(on, floor)
    return (on, int(precedence(event)), version, event.event_id)


def modification_floor(state: RevenueContractState) -> date | None:
    """The latest effective date among the modifications a state has applied (every earlier
    version of the contract): the floor of the next modification's place. A change order's
    decision makes no version, so it sets no floor (as in `keyed`)."""
    return max((d.effective_date for d in state.decisions
                if not d.amendment_id.startswith(CHANGE_ORDER_PREFIX)), default=None)


def canonical(events: Iterable[RevenueEvent]) -> tuple[RevenueEvent, ...]:
    return tuple(event for _, event in sorted(keyed(events), key=lambda pair: pair[0]))


def keyed(events: Iterable[RevenueEvent],
          floor: date | None = None) -> list[tuple[OrderKey, RevenueEvent]]:
    """Each event with its key; modifications floored by their earlier versions' dates."""
    found = list(events)
    mods = sorted((e for e in found if isinstance(e, ContractModified)),
                  key=lambda e: e.amendment.version)
    floors: dict[str, date | None] = {}
    for mod in mods:
        floors[mod.event_id] = floor
        day = mod.amendment.effective_date
        floor = day if floor is None else max(floor, day)
    return [(order_key(e, floors.get(e.event_id)), e) for e in found]


def carry_versions(previous: RevenueContractState, rebuilt: RevenueContractState,
                   cause: RevenueEvent) -> RevenueContractState:
    before = {ob.obligation_id: ob for ob in previous.obligations}
    carried = tuple(_carried(before.get(ob.obligation_id), ob, cause)
                    for ob in rebuilt.obligations)
    return replace(rebuilt, obligations=carried)


def _carried(old: ObligationState | None, new: ObligationState,
             cause: RevenueEvent) -> ObligationState:
    if old is None:
        return new
    if _unnumbered(old) == _unnumbered(new):
        return old
    shared = _shared(old.revisions, new.revisions)
    kept = old.revisions[:shared]
    version = max(old.version, kept[-1].version if kept else 0)
    rest: list[Revision] = []
    for revision in new.revisions[shared:]:
        version += 1
        rest.append(replace(revision, version=version))
    if not rest:  # the rebuild took a revision away: the schedule still changed
        rest.append(Revision(version + 1, cause.event_id, "canonical order",
                             at_midnight(effective_date(cause)),
                             f"re-applied in canonical order after {cause.event_id}"))
    return replace(new, revisions=(*kept, *rest))


def _unnumbered(ob: ObligationState) -> ObligationState:
    return replace(ob, revisions=tuple(replace(r, version=0) for r in ob.revisions))


def _shared(old: Sequence[Revision], new: Sequence[Revision]) -> int:
    """How many leading revisions the two chains have in common (numbers aside)."""
    count = 0
    for a, b in zip(old, new, strict=False):
        if replace(a, version=0) != replace(b, version=0):
            break
        count += 1
    return count
