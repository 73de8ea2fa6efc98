"""Drafting and issuing invoices.

Rules:
- A draft line is already rounded: every line amount is rounded exactly once (half-even,
  minor units) where it is priced. The invoice's subtotal is the sum of its lines, tax is
  asked of the tax engine per line, and total = subtotal + tax, so lines always sum exactly.
- Zero lines are left off; a draft with no line left issues no invoice (and no number).
- Issued invoices are numbered gaplessly per legal entity, dated on the day the charge is
  due (the cycle start in advance, the period end in arrears, the effective date of an
  amendment) and due after the configured payment terms.
- Each invoice remembers the correlation id of the change that caused it and, per line, the
  contract line it bills (what a later credit may credit).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from finsync.domain.aggregate import AggregateRef
from finsync.domain.clock import Period
from finsync.domain.contract import SubscriptionContract
from finsync.domain.events import InvoiceIssued
from finsync.domain.invoice import DocumentLine, Invoice
from finsync.domain.money import Money, total
from finsync.systems.billing.event import emit
from finsync.systems.billing.outcome import Outcome
from finsync.systems.billing.state import BillingState, InvoiceRecord
from finsync.systems.billing.tax import TaxableLine, checked_tax


@dataclass(frozen=True, slots=True)
class DraftLine:
    source_line_id: str
    product_id: str
    description: str
    quantity: int
    amount: Money
    service: Period
    proration: bool = False

    def __post_init__(self) -> None:
        assert self.amount.amount >= 0, "invoice lines are never negative: credit instead"
        assert self.amount.quantize() == self.amount, "draft lines are rounded when priced"


@dataclass(frozen=True, slots=True)
class IssueContext:
    contract: SubscriptionContract
    issue_date: date
    correlation_id: str
    causation: AggregateRef | None


def issue_invoice(state: BillingState, drafts: tuple[DraftLine, ...],
                  ctx: IssueContext) -> Outcome:
    kept = tuple(d for d in drafts if not d.amount.is_zero)
    if not kept:
        return Outcome(state)
    invoice = _build(state, kept, ctx)
    record = InvoiceRecord(invoice, ctx.correlation_id, tuple(d.source_line_id for d in kept))
    emitted = emit(InvoiceIssued(invoice), ctx.correlation_id, ctx.causation)
    return Outcome(state.with_invoice(record), (emitted,))


def _build(state: BillingState, drafts: tuple[DraftLine, ...], ctx: IssueContext) -> Invoice:
    contract, catalog = ctx.contract, state.config.catalog
    country = state.customer(contract.customer_id).billing_country
    taxable = [TaxableLine(str(i), catalog.product(d.product_id).tax_code, d.amount)
               for i, d in enumerate(drafts, start=1)]
    taxes = checked_tax(state.config.tax_engine, country, ctx.issue_date, taxable)
    lines = tuple(
        DocumentLine(str(i), d.product_id, d.description, d.quantity, d.amount, tax,
                     d.service.start, d.service.end, d.proration, d.source_line_id or None)
        for i, (d, tax) in enumerate(zip(drafts, taxes, strict=True), start=1))
    subtotal = total([d.amount for d in drafts], contract.currency)
    tax_total = total(taxes, contract.currency)
    invoice_id, number = state.next_invoice_number(contract.legal_entity)
    due = ctx.issue_date + timedelta(days=state.config.payment_terms_days)
    return Invoice(invoice_id, number, contract.customer_id, contract.id, contract.version,
                   contract.legal_entity, contract.currency, ctx.issue_date, due, lines,
                   subtotal, tax_total, subtotal + tax_total)
