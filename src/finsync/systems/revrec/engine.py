"""The revenue engine's entry points: book a contract, apply events, replay a history.

Rules:
- `book_contract` makes the state from a `ContractBooked`; `apply_event` applies any other
  event and returns the new state. Both are pure: no clock, no I/O, no randomness.
- An event whose id the state has already applied returns the very same state object, so a
  redelivered event is harmless (the storage layer can also compare identity).
- The result for a set of events is defined by the canonical order (`order`): `replay` and
  `rebuild` apply events in it whatever order they are given in; `apply_event` applies one
  event to the state as it stands, which is that result when the event sorts after every
  event applied so far (the service rebuilds otherwise).
- Usage is priced at the usage line's unit price in force on the day it occurred and must
  fall within that line's service period.
- Facts (units delivered, percent complete, costs incurred) revise the obligation they
  name; measures of progress are taken by `measure`.
- A price change with a delivered part goes to `concession`; an approved unpriced change
  order to `change_order`.
- A customer option exercised or lapsed moves its material right (`material_right`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import date

from finsync.domain.clock import Period
from finsync.systems.revrec.amendment import apply_modification
from finsync.systems.revrec.booking import book_contract
from finsync.systems.revrec.change_order import apply_change_order
from finsync.systems.revrec.concession import apply_delivered_change
from finsync.systems.revrec.consideration import line_steps
from finsync.systems.revrec.errors import ContractMismatchError, RevenueError
from finsync.systems.revrec.event import (
    ChangeOrderApproved,
    ContractBooked,
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
from finsync.systems.revrec.material_right import apply_option_exercised, apply_option_lapsed
from finsync.systems.revrec.measure import report_costs, report_progress
from finsync.systems.revrec.obligation import ObligationState, PeriodComponent
from finsync.systems.revrec.order import carry_versions, keyed, modification_floor
from finsync.systems.revrec.pattern import RecognitionPattern
from finsync.systems.revrec.price_change import (
    apply_credit_memo,
    apply_price_change,
    apply_refund,
    record_billings,
)
from finsync.systems.revrec.state import RevenueContractState
from finsync.systems.revrec.timegrid import at_midnight

__all__ = ["apply_event", "book_contract", "rebuild", "replay", "replay_from"]

HISTORY_MAX = 1_000_000  # events per revenue contract; a bound, not a target


def apply_event(state: RevenueContractState, event: RevenueEvent) -> RevenueContractState:
    if event.event_id in state.applied_event_ids:
        return state
    if len(state.applied_event_ids) >= HISTORY_MAX:
        raise RevenueError(f"{state.revenue_contract_id} has {HISTORY_MAX} events")
    match event:
        case ContractModified():
            return apply_modification(state, event)
        case TransactionPriceChanged() if event.delivered is not None:
            return apply_delivered_change(state, event)
        case TransactionPriceChanged():
            return apply_price_change(state, event)
        case InvoiceRecorded():
            return _invoice(state, event)
        case CreditMemoApplied():
            return apply_credit_memo(state, event)
        case RefundRecorded():
            return apply_refund(state, event)
        case UsageRecorded():
            return _usage(state, event)
        case UnitsDelivered():
            return _delivered(state, event)
        case ProgressReported():
            return report_progress(state, event)
        case CostsReported():
            return report_costs(state, event)
        case ChangeOrderApproved():
            return apply_change_order(state, event)
        case OptionExercised():
            return apply_option_exercised(state, event)
        case OptionLapsed():
            return apply_option_lapsed(state, event)


def replay(booked: ContractBooked, events: Iterable[RevenueEvent]) -> RevenueContractState:
    """The state after `booked` and then `events`, in canonical order."""
    return replay_from(book_contract(booked), events)


def replay_from(baseline: RevenueContractState,
                events: Iterable[RevenueEvent]) -> RevenueContractState:
    """The baseline with `events` applied in canonical order (ids it has already: no-ops)."""
    state = baseline
    for _, event in sorted(keyed(events, modification_floor(baseline)), key=lambda p: p[0]):
        state = apply_event(state, event)
    return state


def rebuild(baseline: RevenueContractState, events: Iterable[RevenueEvent],
            previous: RevenueContractState, cause: RevenueEvent) -> RevenueContractState:
    """The contract rebuilt from `baseline` over `events` (`cause`, the back-dated event that
    made the rebuild necessary, among them), its schedule versions carried on from
    `previous` (`order.carry_versions`)."""
    return carry_versions(previous, replay_from(baseline, events), cause)


def _invoice(state: RevenueContractState, event: InvoiceRecorded) -> RevenueContractState:
    invoice = event.invoice
    if invoice.contract_id not in (None, state.contract.id) or invoice.currency != (
            state.currency):
        raise ContractMismatchError(f"invoice {invoice.id} is not for {state.contract.id} "
                                    f"in {state.currency}")
    return record_billings(state, event.event_id, invoice.id, invoice.issue_date, invoice.lines)


def _usage(state: RevenueContractState, event: UsageRecorded) -> RevenueContractState:
    usage = event.usage
    if usage.contract_id != state.contract.id:
        raise ContractMismatchError(f"usage {usage.id} is for {usage.contract_id}")
    ob = _usage_obligation(state, usage.product_id)
    if event.amount is not None:
        amount, how = event.amount.quantize(), f"rated at {event.amount}"
    else:
        line = next(li for li in state.contract.lines if li.line_id == ob.line_id)
        step = next((s for s in line_steps(line) if usage.occurred_on in s.span), None)
        if step is None:
            raise RevenueError(f"usage {usage.id} on {usage.occurred_on} is outside line "
                               f"{line.line_id}")
        amount, how = (step.unit_price * usage.quantity).quantize(), f"x {step.unit_price}"
    day = Period(usage.occurred_on, date.fromordinal(usage.occurred_on.toordinal() + 1))
    ob = ob.with_component(PeriodComponent(usage.id, amount, day))
    ob = ob.revised(event.event_id, "606-10-32-40", at_midnight(usage.occurred_on),
                    f"usage {usage.id}: {usage.quantity} {how}")
    return state.with_obligations((ob,)).applied(event.event_id)


def _usage_obligation(state: RevenueContractState, product_id: str) -> ObligationState:
    found = [ob for ob in state.obligations
             if ob.product_id == product_id and ob.pattern is RecognitionPattern.USAGE]
    if len(found) != 1:
        raise ContractMismatchError(f"{len(found)} usage obligations for {product_id} in "
                                    f"{state.revenue_contract_id}")
    return found[0]


def _delivered(state: RevenueContractState, event: UnitsDelivered) -> RevenueContractState:
    ob = state.obligation(event.obligation_id)
    if ob.pattern is not RecognitionPattern.PER_UNIT or event.quantity <= 0:
        raise RevenueError(f"{ob.obligation_id}: units delivered need a per-unit obligation "
                           "and a positive quantity")
    ob = replace(ob, deliveries=(*ob.deliveries, (event.delivered_on, event.quantity)))
    ob = ob.revised(event.event_id, "606-10-25-31", at_midnight(event.delivered_on),
                    f"{event.quantity} units delivered")
    return state.with_obligations((ob,)).applied(event.event_id)
