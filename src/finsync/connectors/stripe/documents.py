"""Invoices and credit notes as canonical documents (see `objects` for the amount, date and
shape rules every Stripe document follows)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from finsync.connectors.stripe.delivery import Delivery, Handler, Planner
from finsync.connectors.stripe.objects import (
    Obj,
    SourceSettings,
    built,
    child,
    count,
    currency_of,
    day,
    id_of,
    listed,
    minor,
    ref,
    refs,
    text,
)
from finsync.connectors.stripe.payments import (
    credit_note_applied,
    customer_credit_applied,
    invoice_payments,
)
from finsync.domain.errors import MappingError
from finsync.domain.events import AnyEvent, CreditMemoIssued, InvoiceIssued, PaymentApplied
from finsync.domain.invoice import CreditMemo, DocumentLine, Invoice
from finsync.domain.money import Money, total

# -- invoices and credit notes ----------------------------------------------------------------

def _line_product(line: Obj, settings: SourceSettings) -> str:
    details = child(child(line, "pricing"), "price_details")
    price = child(line, "price") or child(line, "plan")
    return (id_of(details.get("product")) or id_of(price.get("product"))
            or settings.fallback_product)


def _line_proration(line: Obj) -> bool:
    parent = child(line, "parent")
    for key in ("subscription_item_details", "invoice_item_details"):
        if isinstance(child(parent, key).get("proration"), bool):
            return bool(child(parent, key)["proration"])
    return line.get("proration") is True


def _taxes(line: Obj, currency: str, path: str) -> tuple[Money, Money]:
    """(tax included in the amount, tax on top of it), old `tax_amounts` or new `taxes`."""
    inclusive, exclusive = Money.zero(currency), Money.zero(currency)
    for n, tax in enumerate(listed(line, "taxes", path) + listed(line, "tax_amounts", path)):
        amount = minor(tax, "amount", currency, f"{path}.taxes[{n}]")
        if tax.get("inclusive") is True or tax.get("tax_behavior") == "inclusive":
            inclusive += amount
        else:
            exclusive += amount
    return inclusive, exclusive


def _document_line(line: Obj, currency: str, settings: SourceSettings, fallback_day: date,
                   path: str) -> DocumentLine:
    gross = minor(line, "amount", currency, path)
    discounts = total([minor(d, "amount", currency, f"{path}.discount_amounts")
                       for d in listed(line, "discount_amounts", path)], currency)
    inclusive, exclusive = _taxes(line, currency, path)
    period = child(line, "period")
    start = day(period["start"], f"{path}.period.start") if "start" in period else fallback_day
    end = day(period["end"], f"{path}.period.end") if "end" in period else fallback_day
    return DocumentLine(
        text(line, "id", path), _line_product(line, settings),
        str(line.get("description") or _line_product(line, settings)),
        count(line, "quantity", path, 1), gross - discounts - inclusive, inclusive + exclusive,
        start, end, _line_proration(line))


def _totals(doc_id: str, lines: Sequence[DocumentLine], currency: str, stated: Money,
            path: str) -> tuple[Money, Money, Money]:
    subtotal = total([line.amount for line in lines], currency)
    tax = total([line.tax_amount for line in lines], currency)
    if subtotal + tax != stated:
        raise MappingError(f"{path} {doc_id}: lines come to {subtotal + tax}, Stripe's total is "
                           f"{stated}", code="totals_mismatch")
    return subtotal, tax, stated


def invoice_subscription(inv: Obj) -> str | None:
    details = child(child(inv, "parent"), "subscription_details")
    return id_of(details.get("subscription")) or id_of(inv.get("subscription"))


def invoice(inv: Obj, settings: SourceSettings) -> Invoice:
    path = "invoice"
    inv_id, currency = text(inv, "id", path), currency_of(inv, path)
    finalized = child(inv, "status_transitions").get("finalized_at")
    issued = day(finalized or inv.get("created"), f"{path}.finalized_at")
    lines = tuple(_document_line(line, currency, settings, issued, f"{path}.lines[{n}]")
                  for n, line in enumerate(listed(inv, "lines", path)))
    subtotal, tax, grand = _totals(inv_id, lines, currency, minor(inv, "total", currency, path),
                                   path)
    due = day(inv["due_date"], f"{path}.due_date") if inv.get("due_date") else issued
    credit = customer_credit_applied(inv, currency)
    return built(path, lambda: Invoice(
        inv_id, str(inv.get("number") or inv_id),
        ref(inv, "customer", path),
        invoice_subscription(inv), None, settings.legal_entity, currency, issued, due, lines,
        subtotal, tax, grand, refs(inv_id), credit))


def credit_memo(note: Obj, settings: SourceSettings) -> CreditMemo:
    path = "credit_note"
    note_id, currency = text(note, "id", path), currency_of(note, path)
    issued = day(note.get("created"), f"{path}.created")
    lines = tuple(_document_line(line, currency, settings, issued, f"{path}.lines[{n}]")
                  for n, line in enumerate(listed(note, "lines", path)))
    subtotal, tax, grand = _totals(note_id, lines, currency,
                                   minor(note, "total", currency, path), path)
    return built(path, lambda: CreditMemo(
        note_id, str(note.get("number") or note_id),
        ref(note, "invoice", path),
        ref(note, "customer", path),
        settings.legal_entity, currency, issued, str(note.get("reason") or "credit_note"),
        lines, subtotal, tax, grand, refs(note_id), credit_note_applied(note, currency)))


# -- handlers ---------------------------------------------------------------------------------

INVOICE_ISSUED = frozenset({"invoice.finalized", "invoice.created"})
INVOICE_PAID = frozenset({"invoice.paid", "invoice.payment_succeeded"})
IGNORED = frozenset({
    "invoice.updated", "invoice.upcoming", "invoice.sent", "invoice.payment_failed",
    "invoice.payment_action_required", "invoice.finalization_failed", "invoice.overdue",
    "invoice.will_be_due", "invoice.deleted",  # only drafts can be deleted
    "credit_note.updated",  # only memo and metadata can change
})
UNSUPPORTED = frozenset({"invoice.voided", "invoice.marked_uncollectible", "credit_note.voided"})
RELATED: dict[str, Planner] = {}


def _invoice(d: Delivery, settings: SourceSettings) -> list[AnyEvent]:
    obj = d.object
    if obj.get("status") == "draft":
        return []  # not issued yet: invoice.finalized follows
    issued: list[AnyEvent] = [InvoiceIssued(invoice(obj, settings))]
    if d.type in INVOICE_PAID:
        issued += [PaymentApplied(paid) for paid in invoice_payments(d, settings)]
    return issued


def _credit_note(d: Delivery, settings: SourceSettings) -> list[AnyEvent]:
    return [CreditMemoIssued(credit_memo(d.object, settings))]


HANDLERS: dict[str, Handler] = {
    **{t: _invoice for t in INVOICE_ISSUED | INVOICE_PAID},
    "credit_note.created": _credit_note,
}
