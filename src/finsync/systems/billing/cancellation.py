"""Cancellation: at term end, or immediately with or without a refund.

Rules:
- Every cancellation is an amendment (version n+1, event `ContractCancelled`), with the
  same date rules as any amendment.
- At term end: the contract keeps running and is billed to its end, then does not renew
  (op `ChangeOp.CANCEL_AT_TERM_END`, contract-level). It can still be cancelled immediately
  later.
- Immediately: the contract and its lines end on the effective date (op `ChangeOp.CANCELLED`,
  contract-level, then the diff of the lines; a line not started is dropped); advance billing
  stops and usage is rated one last time up to that date by the clock. It cannot take effect
  on the start date (void the invoice instead) nor before usage already rated.
- With refund: what was billed in advance for `[effective, billed through)` is credited per
  line (credit memo, reason refund, rounded once per line), and whatever those credits leave
  overpaid on an invoice is refunded to its payments, newest first. Without refund: neither.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from enum import StrEnum

from finsync.domain.aggregate import AggregateRef
from finsync.domain.contract import (
    CONTRACT_LEVEL,
    ChangeOp,
    ContractAmendment,
    ContractChange,
    ContractLine,
    SubscriptionContract,
)
from finsync.domain.events import ContractCancelled, CreditMemoIssued, PaymentApplied, RefundIssued
from finsync.domain.ids import derive_id
from finsync.domain.money import Money, total
from finsync.domain.payment import Payment, Refund
from finsync.systems.billing.amendment import check_effective, line_deltas, prorated_span
from finsync.systems.billing.charge import rounded
from finsync.systems.billing.credit import (
    CreditContext,
    CreditReason,
    LineCredit,
    credit_contract_lines,
)
from finsync.systems.billing.diff import contract_diff
from finsync.systems.billing.errors import AmendmentDateError
from finsync.systems.billing.event import contract_ref, emit
from finsync.systems.billing.outcome import Outcome
from finsync.systems.billing.state import (
    BillingState,
    Subscription,
    SubscriptionStatus,
    VersionInForce,
    amount_due,
    refunded,
)


class CancelMode(StrEnum):
    AT_TERM_END = "at_term_end"
    IMMEDIATE_WITH_REFUND = "immediate_with_refund"
    IMMEDIATE_NO_REFUND = "immediate_no_refund"


@dataclass(frozen=True, slots=True)
class CancelSubscription:
    id: str
    contract_id: str
    effective_date: date
    mode: CancelMode
    reason: str = "cancellation"


def cancel_subscription(state: BillingState, cmd: CancelSubscription) -> Outcome:
    sub = state.subscription(cmd.contract_id)
    check_effective(sub, cmd.id, cmd.effective_date)
    if cmd.mode is CancelMode.AT_TERM_END:
        return _at_term_end(state, sub, cmd)
    if cmd.effective_date == sub.contract.start_date:
        raise AmendmentDateError(f"{cmd.id}: an immediate cancellation on the start date "
                                 "ends nothing; credit the first invoice instead")
    if cmd.effective_date < sub.arrears_through:
        raise AmendmentDateError(f"{cmd.id}: usage is rated through {sub.arrears_through}")
    return _immediately(state, sub, cmd)


def _at_term_end(state: BillingState, sub: Subscription, cmd: CancelSubscription) -> Outcome:
    old = sub.contract
    new = replace(old, version=old.version + 1)
    change = ContractChange(ChangeOp.CANCEL_AT_TERM_END, CONTRACT_LEVEL, "renews",
                            f"ends {old.end_date.isoformat()}")
    return _record(state, sub, cmd, new, (change,), SubscriptionStatus.CANCEL_AT_TERM_END)


def _immediately(state: BillingState, sub: Subscription, cmd: CancelSubscription) -> Outcome:
    old, day = sub.contract, cmd.effective_date
    lines = tuple(_ended(line, day) for line in old.lines if line.start_date < day)
    new = replace(old, end_date=day, lines=lines, version=old.version + 1)
    changes = (ContractChange(ChangeOp.CANCELLED, CONTRACT_LEVEL, old.end_date.isoformat(),
                              day.isoformat()),
               *contract_diff(old, new))
    outcome = _record(state, sub, cmd, new, changes, SubscriptionStatus.CANCELLED)
    if cmd.mode is CancelMode.IMMEDIATE_NO_REFUND:
        return outcome
    return outcome.then(_refund_unused(outcome.state, sub, new, cmd))


def _ended(line: ContractLine, day: date) -> ContractLine:
    ramp = tuple(s for s in line.ramp if s.starts_on < day)
    return replace(line, end_date=min(line.end_date, day), ramp=ramp)


def _record(state: BillingState, sub: Subscription, cmd: CancelSubscription,
            new: SubscriptionContract, changes: tuple[ContractChange, ...],
            status: SubscriptionStatus) -> Outcome:
    amendment = ContractAmendment(cmd.id, new.id, new.version, cmd.effective_date, cmd.reason,
                                  changes, new)
    baseline = () if status is SubscriptionStatus.CANCELLED else sub.renewal_lines
    cancelled = replace(sub, contract=new, correlation_id=cmd.id, status=status,
                        auto_renew=False, renewal_lines=baseline,
                        history=(*sub.history, VersionInForce(cmd.effective_date, new)),
                        amendments=(*sub.amendments, amendment))
    emitted = emit(ContractCancelled(amendment), cmd.id, contract_ref(sub.contract))
    return Outcome(state.with_subscription(cancelled), (emitted,))


def _refund_unused(state: BillingState, sub: Subscription, new: SubscriptionContract,
                   cmd: CancelSubscription) -> Outcome:
    """Credit what was billed for after the cancellation, then refund any overpayment."""
    span = prorated_span(sub, cmd.effective_date)
    deltas = line_deltas(state, sub, sub.contract.lines, new.lines, span, None)
    credits = tuple(LineCredit(d.line_id, rounded(-d.amount, new.currency),
                               d.before.quantity if d.before else 0, span,
                               "Unused time after cancellation")
                    for d in deltas if span is not None and d.amount < 0)
    ctx = CreditContext(CreditReason.REFUND, cmd.effective_date, cmd.id, contract_ref(new))
    outcome = credit_contract_lines(state, new.id, credits, ctx)
    invoice_ids = [e.event.credit_memo.invoice_id for e in outcome.emitted
                   if isinstance(e.event, CreditMemoIssued)]
    return outcome.then(_refund_overpaid(outcome.state, invoice_ids, cmd))


def _refund_overpaid(state: BillingState, invoice_ids: list[str],
                     cmd: CancelSubscription) -> Outcome:
    refunds: list[Refund] = []
    for invoice_id in invoice_ids:
        over = -amount_due(state, invoice_id)
        for payment in reversed([p for p in state.payments
                                 if any(a.invoice_id == invoice_id for a in p.applications)]):
            room = payment.amount - refunded(state, payment) - _pending(refunds, payment)
            part = over if over <= room else room
            if part.amount > 0:
                # Paid out of the credit the cancellation left on the invoice.
                refunds.append(Refund(derive_id("re", cmd.id, payment.id), payment.id,
                                      payment.customer_id, payment.legal_entity, part,
                                      cmd.effective_date, cmd.reason, from_credit=part,
                                      reopens_invoice=invoice_id))
                over = over - part
    emitted = tuple(emit(RefundIssued(r), cmd.id,
                         AggregateRef(PaymentApplied.aggregate_type, r.payment_id))
                    for r in refunds)
    return Outcome(replace(state, refunds=state.refunds + tuple(refunds)), emitted)


def _pending(refunds: list[Refund], payment: Payment) -> Money:
    return total([r.amount for r in refunds if r.payment_id == payment.id],
                 payment.amount.currency)
