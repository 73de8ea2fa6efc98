"""Held invoices retried: issued when their tax can be computed, held again otherwise.

Rules:
- `RetryHeldInvoices` asks the tax engine again for one held draft (`draft_id`) or for
  every draft still held, oldest first; the billing clock does the same on every run.
- Success: the invoice is issued with the next number of its entity, dated as the draft
  was, and `InvoiceReleased` (the draft's next version, naming the invoice) then
  `InvoiceIssued` are emitted, in that order.
- Failure with the same code as the draft's latest hold emits nothing (the exception
  stays as it is); with another code, the draft's next version is held (`InvoiceHeld`).
- A released draft is never issued again: retrying it does nothing (idempotent).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from finsync.domain.aggregate import AggregateRef
from finsync.domain.events import InvoiceHeld, InvoiceIssued, InvoiceReleased
from finsync.domain.tax import TaxUnavailableError
from finsync.systems.billing.draft import HeldDraft
from finsync.systems.billing.event import Emitted, emit
from finsync.systems.billing.invoicing import IssueContext, TaxFailure, build_invoice
from finsync.systems.billing.outcome import Outcome
from finsync.systems.billing.state import BillingState, InvoiceRecord


@dataclass(frozen=True, slots=True)
class RetryHeldInvoices:
    """Retry one held draft, or all of them (None)."""

    draft_id: str | None = None


def retry_held_invoices(state: BillingState, cmd: RetryHeldInvoices) -> Outcome:
    if cmd.draft_id is not None:
        return retry_draft(state, state.held_draft(cmd.draft_id))
    return retry_all(state)


def retry_all(state: BillingState) -> Outcome:
    """Every draft still held in `state`, in the order they were held."""
    outcome = Outcome(state)
    for draft in state.held:
        if not draft.released:
            outcome = outcome.then(retry_draft(outcome.state, draft))
    return outcome


def retry_draft(state: BillingState, draft: HeldDraft) -> Outcome:
    if draft.released:
        return Outcome(state)
    ctx = IssueContext(draft.contract, draft.held.issue_date, draft.correlation_id,
                       draft.causation)
    try:
        invoice = build_invoice(state, draft.lines, ctx)
    except TaxFailure as exc:
        if exc.code == draft.held.code:
            return Outcome(state)
        held = replace(draft.held, version=draft.held.version + 1, code=exc.code,
                       reason=str(exc), transient=isinstance(exc, TaxUnavailableError))
        return Outcome(state.with_held(replace(draft, held=held)),
                       (_emitted(InvoiceHeld(held), draft),))
    released = replace(draft.held, version=draft.held.version + 1, invoice_id=invoice.id)
    record = InvoiceRecord(invoice, draft.correlation_id,
                           tuple(d.source_line_id for d in draft.lines))
    issued = emit(InvoiceIssued(invoice), draft.correlation_id, draft.causation)
    after = state.with_held(replace(draft, held=released)).with_invoice(record)
    return Outcome(after, (_emitted(InvoiceReleased(released), draft), issued))


def _emitted(event: InvoiceHeld | InvoiceReleased, draft: HeldDraft) -> Emitted:
    """A new version of the draft, caused by its previous version."""
    before = AggregateRef(InvoiceHeld.aggregate_type, draft.id, draft.held.version)
    return Emitted(event, event.aggregate(), draft.correlation_id, before)
