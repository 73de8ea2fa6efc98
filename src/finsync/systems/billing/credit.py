"""Credit memos: corrections of issued invoices.

Rules:
- A credit memo names one invoice and credits some of its lines; reasons are sla_credit,
  downgrade, goodwill and refund.
- Never more than was charged: per invoice line, everything credited stays within the
  line's amount, and its tax within the line's tax; so a memo never exceeds its invoice.
- Tax is not asked of the engine again: a credit reverses the line's own tax in proportion
  (line tax * credited / line amount, half-even), and the credit that empties a line takes
  exactly the tax left on it. Per jurisdiction line the same holds (`tax.reversed_taxes`):
  a credit's tax is split over the line's jurisdiction lines by what is left of each
  (largest remainder), and the emptying credit takes exactly what is left of each.
- An amount to credit on a whole invoice (an SLA credit, goodwill) is spread over its lines
  by what is left on each, by largest remainder, so the parts sum exactly to the amount.
- A downgrade or cancellation credit for a contract line is taken from the newest invoice
  lines that billed that contract line over the credited span, then older ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from finsync.domain.aggregate import AggregateRef
from finsync.domain.clock import Period
from finsync.domain.events import CreditMemoIssued, InvoiceIssued
from finsync.domain.invoice import CreditMemo, DocumentLine
from finsync.domain.money import Money, total
from finsync.systems.billing.errors import (
    BillingCurrencyError,
    CreditExceedsInvoiceError,
    InvalidCommandError,
)
from finsync.systems.billing.event import emit
from finsync.systems.billing.outcome import Outcome
from finsync.systems.billing.state import BillingState, InvoiceRecord, amount_due, memos_of
from finsync.systems.billing.tax import details_left, reversed_taxes


class CreditReason(StrEnum):
    SLA_CREDIT = "sla_credit"
    DOWNGRADE = "downgrade"
    GOODWILL = "goodwill"
    REFUND = "refund"


@dataclass(frozen=True, slots=True)
class CreditRequest:
    """Credit `amount` (before tax) of the invoice line `line_id`."""

    line_id: str
    amount: Money
    quantity: int
    service: Period | None = None
    description: str = ""


@dataclass(frozen=True, slots=True)
class CreditContext:
    reason: CreditReason
    issue_date: date
    correlation_id: str
    causation: AggregateRef | None = None


def remaining(state: BillingState, record: InvoiceRecord, line: DocumentLine) -> tuple[Money,
                                                                                       Money]:
    """What is still creditable on an invoice line: (amount, tax)."""
    done = [m for memo in memos_of(state, record.invoice.id) for m in memo.lines
            if m.line_id == line.line_id]
    currency = record.invoice.currency
    return (line.amount - total([m.amount for m in done], currency),
            line.tax_amount - total([m.tax_amount for m in done], currency))


def credit_invoice(state: BillingState, record: InvoiceRecord,
                   requests: Sequence[CreditRequest], ctx: CreditContext) -> Outcome:
    """Issue one credit memo on `record` for `requests`; refuses to exceed any line."""
    if not requests:
        raise InvalidCommandError("a credit memo needs at least one line")
    lines = tuple(_memo_line(state, record, r) for r in requests)
    invoice, currency = record.invoice, record.invoice.currency
    subtotal = total([x.amount for x in lines], currency)
    tax_total = total([x.tax_amount for x in lines], currency)
    memo_id, number = state.next_credit_memo_number(invoice.legal_entity)
    due = amount_due(state, invoice.id)
    memo_total = subtotal + tax_total
    applied = Money.zero(currency) if due.amount <= 0 else min(due, memo_total)
    memo = CreditMemo(memo_id, number, invoice.id, invoice.customer_id, invoice.legal_entity,
                      currency, ctx.issue_date, ctx.reason.value, lines, subtotal, tax_total,
                      memo_total, applied_to_invoice=applied)
    emitted = emit(CreditMemoIssued(memo), ctx.correlation_id,
                   ctx.causation or AggregateRef(InvoiceIssued.aggregate_type, invoice.id))
    return Outcome(state.with_credit_memo(memo), (emitted,))


def _memo_line(state: BillingState, record: InvoiceRecord, request: CreditRequest) -> DocumentLine:
    line = _line(record, request.line_id)
    if request.amount.currency != record.invoice.currency:
        raise BillingCurrencyError(f"credit in {request.amount.currency} on a "
                                   f"{record.invoice.currency} invoice")
    amount_left, tax_left = remaining(state, record, line)
    if request.amount.amount <= 0 or request.amount.quantize() != request.amount:
        raise InvalidCommandError(f"credit {request.amount} must be positive, in minor units")
    if amount_left < request.amount:
        raise CreditExceedsInvoiceError(f"credit {request.amount} exceeds the {amount_left} "
                                        f"left on line {line.line_id} of {record.invoice.number}")
    empties = request.amount == amount_left
    tax = tax_left if empties else _proportional_tax(line, request, tax_left)
    earlier = [m.taxes for memo in memos_of(state, record.invoice.id) for m in memo.lines
               if m.line_id == line.line_id]
    taxes = reversed_taxes(line.taxes, details_left(line.taxes, earlier), tax, request.amount,
                           line.amount, empties)
    service = request.service or Period(line.service_start, line.service_end)
    return DocumentLine(line.line_id, line.product_id, request.description or line.description,
                        request.quantity, request.amount, tax, service.start, service.end,
                        line.proration or request.service is not None, line.contract_line_id,
                        taxes=taxes)


def _proportional_tax(line: DocumentLine, request: CreditRequest, tax_left: Money) -> Money:
    exact = line.tax_amount.amount * request.amount.amount / line.amount.amount
    share = Money(exact, line.tax_amount.currency).quantize()
    return share if share <= tax_left else tax_left


def _line(record: InvoiceRecord, line_id: str) -> DocumentLine:
    for line in record.invoice.lines:
        if line.line_id == line_id:
            return line
    raise InvalidCommandError(f"invoice {record.invoice.number} has no line {line_id!r}")


def spread(state: BillingState, record: InvoiceRecord, amount: Money | None) -> tuple[
        CreditRequest, ...]:
    """Requests crediting `amount` (all that is left when None) over the invoice's lines."""
    lefts = [(line, remaining(state, record, line)[0]) for line in record.invoice.lines]
    available = total([left for _, left in lefts], record.invoice.currency)
    wanted = available if amount is None else amount
    if wanted.currency != available.currency:
        raise BillingCurrencyError(f"credit in {wanted.currency} on a {available.currency} "
                                   "invoice")
    if available < wanted:
        raise CreditExceedsInvoiceError(f"credit {wanted} exceeds the {available} left on "
                                        f"{record.invoice.number}")
    if wanted.amount <= 0:
        raise InvalidCommandError(f"nothing to credit on {record.invoice.number}")
    parts = wanted.allocate([left.to_minor() for _, left in lefts])
    return tuple(CreditRequest(line.line_id, part, line.quantity)
                 for (line, _), part in zip(lefts, parts, strict=True) if not part.is_zero)


@dataclass(frozen=True, slots=True)
class LineCredit:
    """Credit `amount` of what contract line `contract_line_id` was billed over `span`."""

    contract_line_id: str
    amount: Money
    quantity: int
    span: Period
    description: str


def credit_contract_lines(state: BillingState, contract_id: str, credits: Sequence[LineCredit],
                          ctx: CreditContext) -> Outcome:
    """One memo per invoice touched, newest invoice lines first; never beyond what they billed."""
    plan: dict[str, list[CreditRequest]] = {}
    for credit in (c for c in credits if not c.amount.is_zero):
        for invoice_id, request in _take(state, contract_id, credit):
            plan.setdefault(invoice_id, []).append(request)
    outcome = Outcome(state)
    for invoice_id, requests in plan.items():
        record = outcome.state.invoice_record(invoice_id)
        outcome = outcome.then(credit_invoice(outcome.state, record, requests, ctx))
    return outcome


def _take(state: BillingState, contract_id: str,
          credit: LineCredit) -> list[tuple[str, CreditRequest]]:
    wanted, taken = credit.amount, []
    for record, line in _billed_lines(state, contract_id, credit):
        part = min(wanted, remaining(state, record, line)[0], key=lambda m: m.amount)
        if part.amount > 0:
            billed = Period(line.service_start, line.service_end)
            service = Period(max(billed.start, credit.span.start),
                             min(billed.end, credit.span.end))
            taken.append((record.invoice.id, CreditRequest(
                line.line_id, part, credit.quantity, service, credit.description)))
            wanted = wanted - part
        if wanted.is_zero:
            break
    return taken


def _billed_lines(state: BillingState, contract_id: str,
                  credit: LineCredit) -> list[tuple[InvoiceRecord, DocumentLine]]:
    """Invoice lines that billed the credited contract line over the span, newest first."""
    found = []
    for record in reversed(state.invoices):
        if record.invoice.contract_id == contract_id:
            for line, source in zip(record.invoice.lines, record.sources, strict=True):
                billed = Period(line.service_start, line.service_end)
                if source == credit.contract_line_id and billed.overlap(credit.span) > 0:
                    found.append((record, line))
    return found


@dataclass(frozen=True, slots=True)
class IssueCreditMemo:
    """Credit `amount` before tax (everything left when None) of an invoice."""

    invoice_id: str
    reason: CreditReason
    issue_date: date
    amount: Money | None = None
    correlation_id: str | None = None


def issue_credit_memo(state: BillingState, cmd: IssueCreditMemo) -> Outcome:
    """A standalone credit (SLA, goodwill, refund) on an invoice; correlated to the invoice's
    change unless the command names its own."""
    record = state.invoice_record(cmd.invoice_id)
    requests = spread(state, record, cmd.amount)
    ctx = CreditContext(cmd.reason, cmd.issue_date, cmd.correlation_id or record.correlation_id)
    return credit_invoice(state, record, requests, ctx)
