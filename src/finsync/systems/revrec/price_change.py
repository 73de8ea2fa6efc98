"""Changes in the transaction price after inception, credit memos and refunds.

Rules:
- A change in transaction price (re-estimated variable consideration, a price concession
  such as an SLA credit, a volume-discount true-up) is allocated on the same basis as at
  inception (606-10-32-43): by the SSPs the obligations were last allocated with, across the
  obligations of the contract's own allocation group (not usage, not separate contracts).
- When the change relates wholly to some obligations (606-10-32-44, criteria of 32-40) it is
  allocated to those only; to one distinct period of a series when a service period is named.
- A change attributable to variable consideration promised before a 25-13(a) modification
  (`promised_before`) is allocated by `reestimate` (606-10-32-45(a)); any other change after
  a modification goes to the modified contract's obligations by the SSPs they were last
  allocated with, and only those not yet satisfied immediately after it (32-45(b)).
- Already-satisfied parts are caught up on the effective date: the obligation's segment in
  force gets the new total from that instant on (606-10-32-43: "recognised as revenue, or as
  a reduction of revenue, in the period in which the transaction price changes").
- Credit memos: a price concession (by treatment, or a concession reason) lowers the
  transaction price of the obligation each line names (its line id, else its product) -
  over the line's service period when that is a distinct part of the obligation - and lowers
  the consideration billed; a billing correction lowers only the consideration billed, so it
  moves deferred revenue (or unbilled receivable), never revenue. A line with no service
  period concerns the whole obligation.
- A credit memo against a one-off invoice's own contract (`point_in_time`) is netted as the
  invoice was (`net_lines`); a void of that invoice cancels the contract: its price falls to
  zero on the inception basis, so what was recognised reverses. A void of a subscription's
  invoice is a billing correction unless the terms name it a concession (the subscription
  itself says whether the service goes on).
- A credit line that names its delivered part (`DocumentLine.delivered`) goes to
  `concession`: that part at once, the rest on what remains. A billing correction ignores it.
- A document bills or credits each obligation once: its lines for one obligation are
  netted.
- A write-off (`WRITE_OFF_REASONS`: an invoice marked uncollectible) is no credit to the
  customer: the billing stands and the price is unchanged, the receivable is impaired in the
  ledger (bad debt, 606-10-45-4), so the engine records it and changes nothing.
- A refund without an obligation pays out a credit balance: no effect on revenue or billings.
  A refund naming an obligation is a concession paid in cash: price and billings both fall.
- An obligation's allocated price may not fall below zero.
- Concessions (a concession credit memo, a refund naming an obligation, a price change of
  kind `price_concession`) are recorded as such in the segment or component they change,
  so their revenue effect is reported as contra revenue (`contra`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from decimal import Decimal

from finsync.domain.clock import Period
from finsync.domain.invoice import VOID, WRITE_OFF, DocumentLine
from finsync.domain.money import Money, total
from finsync.systems.revrec.concession import concede_line
from finsync.systems.revrec.contra import conceded
from finsync.systems.revrec.errors import (
    AllocationError,
    ContractMismatchError,
    UnknownObligationError,
)
from finsync.systems.revrec.event import (
    CreditMemoApplied,
    CreditTreatment,
    PriceChangeKind,
    RefundRecorded,
    TransactionPriceChanged,
)
from finsync.systems.revrec.obligation import ObligationState, PeriodComponent
from finsync.systems.revrec.pattern import Granularity
from finsync.systems.revrec.reestimate import apply_promised_before, modified_contract
from finsync.systems.revrec.state import Billing, RevenueContractState
from finsync.systems.revrec.timegrid import at_midnight

WRITE_OFF_REASONS: frozenset[str] = frozenset({WRITE_OFF})


def apply_price_change(state: RevenueContractState,
                       event: TransactionPriceChanged) -> RevenueContractState:
    _same_currency(state, event.amount)
    if event.promised_before is not None:  # after a 25-13(a) modification: 32-45(a)
        return apply_promised_before(state, event)
    if event.service_period is not None:
        if len(event.obligation_ids) != 1:
            raise AllocationError("a change for one distinct period names exactly one "
                                  "obligation")
        (target,) = event.obligation_ids
        changed = _to_period(state.obligation(target), event.event_id, event.amount,
                             event.service_period, event.effective_date, event.kind.value,
                             concession=event.kind is PriceChangeKind.PRICE_CONCESSION)
        return state.with_obligations((changed,)).applied(event.event_id)
    changed_all = _spread(state, event.event_id, event.amount, event.effective_date,
                          event.obligation_ids, event.kind.value,
                          concession=event.kind is PriceChangeKind.PRICE_CONCESSION)
    return state.with_obligations(changed_all).applied(event.event_id)


def _spread(state: RevenueContractState, event_id: str, amount: Money, on: date,
            targets: frozenset[str], what: str,
            concession: bool = False) -> tuple[ObligationState, ...]:
    if targets:
        chosen = [state.obligation(i) for i in sorted(targets)]
        cause = "606-10-32-44"
    else:
        chosen = modified_contract(state, [ob for ob in state.obligations
                                           if ob.group == state.contract.id
                                           and not ob.pattern.variable])
        cause = "606-10-32-43"
    weights = [ob.standalone_selling_price.amount for ob in chosen]
    if len(chosen) == 1:
        weights = [Decimal(1)]
    if not chosen or sum(weights) <= 0:
        raise AllocationError(f"no obligation with an SSP to take the change {amount}")
    at = at_midnight(on)
    changed = []
    for ob, share in zip(chosen, amount.allocate(weights), strict=True):
        segment = replace(ob.current, total=ob.current.total + share, effective=at)
        if concession:
            segment = conceded(ob, segment, share, state.granularity)
        ob = _not_negative(ob.with_segment(segment), share)
        changed.append(ob.revised(event_id, cause, at, f"{what}: {share}"))
    return tuple(changed)


def _to_period(ob: ObligationState, event_id: str, amount: Money, period: Period,
               on: date, what: str, concession: bool = False) -> ObligationState:
    at = at_midnight(on)
    component = PeriodComponent(event_id, amount, period, at, concession=concession)
    ob = _not_negative(ob.with_component(component), amount)
    return ob.revised(event_id, "606-10-32-44", at,
                      f"{what}: {amount} for {period.start}..{period.end}")


def _not_negative(ob: ObligationState, change: Money) -> ObligationState:
    """A reduction may not take an obligation's allocated price below zero."""
    if change.amount < 0 and ob.allocated_price.amount < 0:
        raise AllocationError(f"{ob.obligation_id}: allocated price would be "
                              f"{ob.allocated_price}")
    return ob


def _same_currency(state: RevenueContractState, amount: Money) -> None:
    if amount.currency != state.currency:
        raise ContractMismatchError(f"{amount} is not in the contract's {state.currency}")


def obligation_for_line(state: RevenueContractState, line: DocumentLine) -> ObligationState:
    """The obligation a billing document's line belongs to: by line id, by the contract line
    it bills, else by product."""
    for ob in state.obligations:
        if ob.obligation_id in (line.line_id, line.contract_line_id):
            return ob
    by_product = [ob for ob in state.obligations
                  if ob.product_id == line.product_id and ob.obligation_id == ob.line_id]
    if not by_product:  # billed before the engine knows the line (an amendment still to come)
        raise UnknownObligationError(f"document line {line.line_id} ({line.product_id}) has "
                                     f"no obligation in {state.revenue_contract_id} yet")
    if len(by_product) > 1:
        raise ContractMismatchError(f"document line {line.line_id} ({line.product_id}) matches "
                                    f"{len(by_product)} obligations of "
                                    f"{state.revenue_contract_id}")
    return by_product[0]


def apply_credit_memo(state: RevenueContractState,
                      event: CreditMemoApplied) -> RevenueContractState:
    memo = event.memo
    _same_currency(state, memo.total)
    if memo.reason in WRITE_OFF_REASONS:
        return state.applied(event.event_id)
    own = state.contract.id == memo.invoice_id  # a one-off invoice's own contract
    lines = net_lines(memo.lines) if own else memo.lines
    treatment = event.treatment or (
        CreditTreatment.PRICE_CONCESSION if memo.reason in state.terms.concession_reasons
        else CreditTreatment.BILLING_CORRECTION)
    billings = [Billing(event.event_id, memo.id, ob_id, memo.issue_date, -amount)
                for ob_id, amount in _per_obligation(state, lines).items()]
    if own and memo.reason == VOID:
        state = _cancelled(state, event.event_id, lines, memo.issue_date)
    elif treatment is CreditTreatment.PRICE_CONCESSION:
        for line in lines:
            ob = obligation_for_line(state, line)
            if line.delivered is None:
                ob = _concession(ob, event.event_id, line, memo.issue_date, memo.reason,
                                 state.granularity)
            else:
                ob = concede_line(state, ob, event.event_id, line, memo.issue_date,
                                  memo.reason)
            state = state.with_obligations((ob,))
    state = replace(state, billings=(*state.billings, *billings))
    return state.applied(event.event_id)


def _cancelled(state: RevenueContractState, event_id: str, lines: Sequence[DocumentLine],
               on: date) -> RevenueContractState:
    """A one-off invoice voided: the contract it is falls away, its price to zero on the
    same basis as at inception (606-10-32-43), so what was recognised reverses."""
    price = total([line.amount for line in lines], state.currency)
    if price.is_zero:
        return state
    return state.with_obligations(_spread(state, event_id, -price, on, frozenset(), VOID))


def net_lines(lines: Sequence[DocumentLine]) -> tuple[DocumentLine, ...]:
    """The positive lines of a one-off document, each net of its largest-remainder share of
    the credit lines (weights: the positive amounts); lines that come to zero are left out.
    A document that credits more than it bills is refused."""
    positive = [line for line in lines if line.amount.amount > 0]
    credits = [line.amount for line in lines if line.amount.amount < 0]
    if not credits:
        return tuple(positive)
    currency = credits[0].currency
    credited = total(credits, currency)
    billed = total([line.amount for line in positive], currency)
    if billed < -credited:
        raise AllocationError(f"the document credits {-credited} and bills only {billed}: "
                              "no one-off contract to book")
    shares = credited.allocate([line.amount.to_minor() for line in positive])
    netted = [replace(line, amount=line.amount + share)
              for line, share in zip(positive, shares, strict=True)]
    return tuple(line for line in netted if not line.amount.is_zero)


def _concession(ob: ObligationState, event_id: str, line: DocumentLine, on: date,
                reason: str, granularity: Granularity) -> ObligationState:
    span = ob.current.basis.span
    if line.service_start < line.service_end:  # a line with no period concerns all of it
        period = Period(line.service_start, line.service_end)
        if period.start >= span.start and period.end <= span.end and period != span:
            return _to_period(ob, f"{event_id}:{line.line_id}", -line.amount, period, on,
                              f"credit memo ({reason})", concession=True)
    at = at_midnight(on)
    segment = conceded(ob, replace(ob.current, total=ob.current.total - line.amount,
                                   effective=at), -line.amount, granularity)
    ob = _not_negative(ob.with_segment(segment), -line.amount)
    return ob.revised(event_id, "606-10-32-44", at, f"credit memo ({reason}): {-line.amount}")


def apply_refund(state: RevenueContractState, event: RefundRecorded) -> RevenueContractState:
    refund = event.refund
    _same_currency(state, refund.amount)
    if event.obligation_id is None:
        return state.applied(event.event_id)
    changed = _spread(state, event.event_id, -refund.amount, refund.issued_on,
                      frozenset({event.obligation_id}), f"refund ({refund.reason})",
                      concession=True)
    billing = Billing(event.event_id, refund.id, event.obligation_id, refund.issued_on,
                      -refund.amount)
    state = state.with_obligations(changed)
    return replace(state, billings=(*state.billings, billing)).applied(event.event_id)


def record_billings(state: RevenueContractState, event_id: str, document_id: str,
                    issued_on: date, lines: Sequence[DocumentLine]) -> RevenueContractState:
    """One billing per obligation the document bills: its lines for that obligation netted,
    so a credit line inside an invoice (the old quantity's unused time beside the new
    quantity's remaining time) lowers what the invoice bills and is not reported as a credit
    memo. Obligations in the order their first line comes."""
    billings = [Billing(event_id, document_id, ob_id, issued_on, amount)
                for ob_id, amount in _per_obligation(state, lines).items()]
    return replace(state, billings=(*state.billings, *billings)).applied(event_id)


def _per_obligation(state: RevenueContractState,
                    lines: Sequence[DocumentLine]) -> dict[str, Money]:
    """The lines' amounts added up per obligation (in the order each first comes), those
    that net to zero left out: a document bills or credits each obligation once."""
    found: dict[str, Money] = {}
    for line in lines:
        if line.amount.is_zero:
            continue
        ob_id = obligation_for_line(state, line).obligation_id
        found[ob_id] = found[ob_id] + line.amount if ob_id in found else line.amount
    return {ob_id: amount for ob_id, amount in found.items() if not amount.is_zero}
