"""Drafting and issuing invoices: tax asked of the tax engine, or the draft held.

Rules:
- Zero lines are left off; a draft with no line left issues no invoice (and no number).
- Every invoice's tax is asked of the tax engine (`tax.TaxQuoter`) for the invoice about
  to be numbered, its answer checked: each line's amount is the engine's `net`, its tax
  the engine's `tax`, its jurisdiction lines the engine's; subtotal = the nets, total =
  subtotal + tax, so lines always sum exactly.
- When the engine is unavailable or refuses (an invalid address is a refusal), nothing is
  issued and no number is taken: the draft is held (`draft.HeldDraft`, `InvoiceHeld`
  version 1, money at stake = the draft's amounts before tax, `transient` when the engine
  was unavailable). The rest of the command goes on: what was billed is owed.
- Issued invoices are numbered gaplessly per legal entity, dated on the day the charge is
  due (the cycle start in advance, the period end in arrears, the effective date of an
  amendment) and due after the configured payment terms; a held draft keeps that date.
- Each invoice remembers the correlation id of the change that caused it and, per line, the
  contract line it bills (what a later credit may credit).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from finsync.domain.aggregate import AggregateRef
from finsync.domain.contract import SubscriptionContract
from finsync.domain.events import InvoiceHeld, InvoiceIssued
from finsync.domain.invoice import DocumentLine, HeldInvoice, Invoice
from finsync.domain.money import total
from finsync.domain.tax import TaxRefusedError, TaxRequestLine, TaxUnavailableError
from finsync.systems.billing.draft import DraftLine, HeldDraft, held_draft_id
from finsync.systems.billing.event import emit
from finsync.systems.billing.outcome import Outcome
from finsync.systems.billing.state import BillingState, InvoiceRecord
from finsync.systems.billing.tax import invoice_request, quoted

__all__ = ["DraftLine", "IssueContext", "TaxFailure", "build_invoice", "issue_invoice"]

# What the tax engine may raise that holds an invoice rather than refusing the command.
TaxFailure = (TaxUnavailableError, TaxRefusedError)


@dataclass(frozen=True, slots=True)
class IssueContext:
    contract: SubscriptionContract
    issue_date: date
    correlation_id: str
    causation: AggregateRef | None


def issue_invoice(state: BillingState, drafts: tuple[DraftLine, ...],
                  ctx: IssueContext) -> Outcome:
    """Issue the non-zero `drafts` as one invoice, or hold them when tax fails."""
    kept = tuple(d for d in drafts if not d.amount.is_zero)
    if not kept:
        return Outcome(state)
    try:
        invoice = build_invoice(state, kept, ctx)
    except TaxFailure as exc:
        return _hold(state, kept, ctx, exc)
    record = InvoiceRecord(invoice, ctx.correlation_id, tuple(d.source_line_id for d in kept))
    emitted = emit(InvoiceIssued(invoice), ctx.correlation_id, ctx.causation)
    return Outcome(state.with_invoice(record), (emitted,))


def _hold(state: BillingState, drafts: tuple[DraftLine, ...], ctx: IssueContext,
          exc: TaxUnavailableError | TaxRefusedError) -> Outcome:
    contract = ctx.contract
    draft_id = held_draft_id(contract, ctx.issue_date, ctx.correlation_id, drafts)
    subtotal = total([d.amount for d in drafts], contract.currency)
    held = HeldInvoice(draft_id, 1, contract.customer_id, contract.id, contract.legal_entity,
                       contract.currency, ctx.issue_date, subtotal, exc.code, str(exc),
                       isinstance(exc, TaxUnavailableError))
    draft = HeldDraft(held, contract, drafts, ctx.correlation_id, ctx.causation)
    emitted = emit(InvoiceHeld(held), ctx.correlation_id, ctx.causation)
    return Outcome(state.with_held(draft), (emitted,))


def build_invoice(state: BillingState, drafts: tuple[DraftLine, ...],
                  ctx: IssueContext) -> Invoice:
    """The next invoice of the contract's entity for `drafts`, taxed by the tax engine
    (raises `TaxFailure` when it cannot be)."""
    contract, catalog = ctx.contract, state.config.catalog
    invoice_id, number = state.next_invoice_number(contract.legal_entity)
    asked = [TaxRequestLine(str(i), d.product_id, catalog.product(d.product_id).tax_code,
                            d.amount, d.tax_inclusive)
             for i, d in enumerate(drafts, start=1)]
    request = invoice_request(invoice_id, state.customer(contract.customer_id),
                              contract.legal_entity, contract.currency, ctx.issue_date, asked)
    answer = quoted(state.config.tax, request)
    lines = tuple(
        DocumentLine(taxed.line_id, d.product_id, d.description, d.quantity, taxed.net,
                     taxed.tax, d.service.start, d.service.end, d.proration,
                     d.source_line_id or None, taxes=taxed.details)
        for d, taxed in zip(drafts, answer.lines, strict=True))
    subtotal = total([line.amount for line in lines], contract.currency)
    tax_total = total([line.tax_amount for line in lines], contract.currency)
    due = ctx.issue_date + timedelta(days=state.config.payment_terms_days)
    return Invoice(invoice_id, number, contract.customer_id, contract.id, contract.version,
                   contract.legal_entity, contract.currency, ctx.issue_date, due, lines,
                   subtotal, tax_total, subtotal + tax_total)
