"""Invoices and credit notes as canonical documents (see `objects` for the amount, date and
shape rules every Stripe document follows, `currency` for Stripe's currency exponents).

Rules:
- A line bills the contract line (subscription item) its parent names
  (`parent.subscription_item_details.subscription_item`, or the older `subscription_item`);
  a line of an invoice item has none. Proration lines come in both directions: the new
  quantity's remaining time (positive) and the old quantity's unused time (negative), and
  both are mapped as they are.
- Discounts, invoice-level or line-level, are in each line's `discount_amounts` (Stripe
  spreads an invoice's discount over its lines); a line's amount is net of them and of tax
  included in the price (`objects`).
- An invoice with no subscription parent (a one-off invoice) names no contract: the revenue
  engine books it as its own point-in-time contract. An invoice of a subscription the
  commercial layer marked (`marks.invoice_contract`) names the canonical contract, as the
  subscription's events do, and each line the contract line its metadata names, if any.
- A credit note line credits one invoice line (`invoice_line_item`): the invoice it credits
  is fetched with the event (`RELATED`), and the line keeps that invoice line's product,
  service period and contract line (for a one-off invoice, the invoice line itself). A
  custom line (no invoice line) is spread over the invoice's billing lines in proportion to
  their amounts (largest remainder), each part keeping its line's product; a note that
  would make more than `CREDIT_LINES_MAX` lines is refused (`too_many_lines`). What Stripe
  set against the invoice (`pre_payment_amount`) is the memo's `applied_to_invoice`.
  Its reason becomes the canonical one (`STRIPE_REASONS`): `product_unsatisfactory` is a
  price concession (`service_credit`), any other a billing correction.
- A voided invoice is reversed by a credit memo `<invoice>_void` (reason `VOID`) of all its
  lines and tax; an invoice marked uncollectible is written off by a memo
  `<invoice>_uncollectible` (reason `WRITE_OFF`) of what it still owed (`amount_remaining`)
  with no tax (the tax billed stays owed), spread over its lines. Each comes with the
  invoice itself (the same document `invoice.finalized` gave, so the hub counts it a
  duplicate), so it is never applied to an invoice the books have not seen. Nothing to
  reverse (a zero amount) gives no memo.
- A void after a write-off would have to undo the write-off first: it is a mapping error
  for finance (`void_after_write_off`), not a guess.
- A line's tax carries Stripe Tax's jurisdiction breakdown (`taxes`: one `TaxDetail` per
  entry, from the rates the delivery carries). A custom credit line spread over the
  invoice's lines shares each jurisdiction line alike (a part's tax is the sum of its
  shares); a void memo keeps the invoice's breakdown, a write-off memo has none (no tax).
  An invoice issued before `tax_breakdown_from`, and every memo on it, maps with none, as
  it did then (`needed`: it needs no tax rate fetched either).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date

from finsync.connectors.stripe import marks, taxes
from finsync.connectors.stripe.delivery import Delivery, Fetch, Handler, Planner, snapshot
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
    customer_credit_applied,
    invoice_payments,
)
from finsync.connectors.stripe.taxes import Rates
from finsync.domain.errors import MappingError
from finsync.domain.events import AnyEvent, CreditMemoIssued, InvoiceIssued, PaymentApplied
from finsync.domain.invoice import VOID, WRITE_OFF, CreditMemo, DocumentLine, Invoice
from finsync.domain.money import Money, total
from finsync.domain.tax import TaxDetail

INVOICE = "invoice"  # the related object a credit note's handler reads: the invoice it credits
# At most this many lines a credit note maps to (custom lines are spread over the invoice's
# lines, so a hostile note could otherwise ask for lines x lines).
CREDIT_LINES_MAX = 2_000

# -- invoices and credit notes ----------------------------------------------------------------

def _line_product(line: Obj, settings: SourceSettings, path: str) -> str:
    """A priced line's revenue product (`catalog.Catalog`), else the fallback product."""
    details = child(child(line, "pricing"), "price_details")
    price = child(line, "price") or child(line, "plan")
    price_id = id_of(details.get("price")) or id_of(price)
    product_id = id_of(details.get("product")) or id_of(price.get("product"))
    if price_id is None and product_id is None:
        return settings.fallback_product
    return settings.catalog.product(price_id, product_id, path)


def _line_proration(line: Obj) -> bool:
    parent = child(line, "parent")
    for key in ("subscription_item_details", "invoice_item_details"):
        if isinstance(child(parent, key).get("proration"), bool):
            return bool(child(parent, key)["proration"])
    return line.get("proration") is True


def _contract_line(line: Obj) -> str | None:
    """The subscription item a line bills (its contract line), if any."""
    parent = child(line, "parent")
    kind = parent.get("type")
    details = child(parent, kind) if isinstance(kind, str) else {}
    return id_of(details.get("subscription_item")) or id_of(line.get("subscription_item"))


def _document_line(line: Obj, currency: str, settings: SourceSettings, fallback_day: date,
                   path: str, rates: Rates | None) -> DocumentLine:
    """One line; with its tax breakdown unless `rates` is None (a document mapped as it was
    before breakdowns, `taxes.breaks_down`)."""
    gross = minor(line, "amount", currency, path)
    discounts = total([minor(d, "amount", currency, f"{path}.discount_amounts")
                       for d in listed(line, "discount_amounts", path)], currency)
    tax = taxes.line_tax(line, currency, path)
    net = gross - discounts - tax.inclusive
    period = child(line, "period")
    start = day(period["start"], f"{path}.period.start") if "start" in period else fallback_day
    end = day(period["end"], f"{path}.period.end") if "end" in period else fallback_day
    product = _line_product(line, settings, path)
    return DocumentLine(
        text(line, "id", path), product, str(line.get("description") or product),
        count(line, "quantity", path, 1), net, tax.inclusive + tax.exclusive,
        start, end, _line_proration(line), _contract_line(line),
        taxes=() if rates is None else taxes.details(tax, net, rates, path))


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


def invoice(inv: Obj, settings: SourceSettings, rates: Rates | None = None) -> Invoice:
    """The invoice; its lines with their tax breakdown when `rates` (the tax rates the
    delivery carries) are given and it is issued since breakdowns (`taxes.breaks_down`)."""
    path = "invoice"
    if rates is not None and not taxes.breaks_down(inv, settings):
        rates = None
    inv_id, currency = text(inv, "id", path), currency_of(inv, path)
    finalized = child(inv, "status_transitions").get("finalized_at")
    issued = day(finalized or inv.get("created"), f"{path}.finalized_at")
    lines = tuple(_document_line(line, currency, settings, issued, f"{path}.lines[{n}]", rates)
                  for n, line in enumerate(listed(inv, "lines", path)))
    contract = marks.invoice_contract(inv)
    if contract is not None:  # the commercial layer's contract: its lines' ids where marked
        lines = tuple(_marked_line(line, raw, f"{path}.lines[{n}]") for n, (line, raw)
                      in enumerate(zip(lines, listed(inv, "lines", path), strict=True)))
    subtotal, tax, grand = _totals(inv_id, lines, currency, minor(inv, "total", currency, path),
                                   path)
    due = day(inv["due_date"], f"{path}.due_date") if inv.get("due_date") else issued
    credit = customer_credit_applied(inv, currency)
    return built(path, lambda: Invoice(
        inv_id, str(inv.get("number") or inv_id),
        ref(inv, "customer", path),
        contract or invoice_subscription(inv), None, settings.legal_entity, currency, issued,
        due, lines,
        subtotal, tax, grand, refs(inv_id), credit))


def _marked_line(line: DocumentLine, raw: Obj, path: str) -> DocumentLine:
    """A line of a marked contract's invoice bills the contract line its metadata names
    (an emulator's lines carry their item's marks; Stripe's carry the subscription's,
    with no line id: the line keeps the subscription item's id)."""
    marked = marks.line_id(child(raw, "metadata"), path)
    if marked is None or line.contract_line_id is None:
        return line
    return replace(line, contract_line_id=marked)


def credit_memo(note: Obj, credited: Invoice, settings: SourceSettings,
                rates: Rates | None = None) -> CreditMemo:
    """A credit note against the invoice `credited` (mapped from the fetched invoice); its
    lines with their tax breakdown when `rates` are given (the caller decides by the
    credited invoice, `taxes.breaks_down`)."""
    path = "credit_note"
    note_id, currency = text(note, "id", path), currency_of(note, path)
    if ref(note, "invoice", path) != credited.id:
        raise MappingError(f"{path} {note_id} credits {ref(note, 'invoice', path)}, not the "
                           f"fetched invoice {credited.id}", code="invalid_event")
    issued = day(note.get("created"), f"{path}.created")
    _bounded(note_id, listed(note, "lines", path), credited)
    lines = tuple(part for n, line in enumerate(listed(note, "lines", path))
                  for part in _credit_lines(line, credited, currency, settings, issued,
                                            f"{path}.lines[{n}]", rates))
    subtotal, tax, grand = _totals(note_id, lines, currency,
                                   minor(note, "total", currency, path), path)
    applied = (minor(note, "pre_payment_amount", currency, path)
               if note.get("pre_payment_amount") is not None else None)
    return built(path, lambda: CreditMemo(
        note_id, str(note.get("number") or note_id), credited.id,
        ref(note, "customer", path),
        settings.legal_entity, currency, issued, memo_reason(note.get("reason")),
        lines, subtotal, tax, grand, refs(note_id), applied))


# Stripe's credit-note reasons in the canonical vocabulary the revenue engine reads: a
# customer credited for service it was unhappy with (an SLA credit) is a price concession
# (`service_credit`, revenue falls); a duplicate, an order change, fraud or no reason given
# is a billing correction (billings fall, the price stands).
STRIPE_REASONS = {"product_unsatisfactory": "service_credit", "duplicate": "duplicate",
                  "order_change": "order_change", "fraudulent": "fraudulent"}


def memo_reason(reason: object) -> str:
    return STRIPE_REASONS.get(str(reason), "credit_note") if reason else "credit_note"


def _bounded(note_id: str, lines: Sequence[Obj], credited: Invoice) -> None:
    """Custom lines are spread over the invoice's lines: bound what that makes."""
    custom = sum(1 for line in lines if id_of(line.get("invoice_line_item")) is None)
    made = len(lines) - custom + custom * len(credited.lines)
    if made > CREDIT_LINES_MAX:
        raise MappingError(f"credit_note {note_id}: {custom} custom lines over the "
                           f"{len(credited.lines)} lines of {credited.id} make {made} lines, "
                           f"above CREDIT_LINES_MAX ({CREDIT_LINES_MAX})",
                           code="too_many_lines")


def _credit_lines(line: Obj, credited: Invoice, currency: str, settings: SourceSettings,
                  issued: date, path: str, rates: Rates | None) -> tuple[DocumentLine, ...]:
    own = _document_line(line, currency, settings, issued, path, rates)
    target = id_of(line.get("invoice_line_item"))
    if target is None:  # a custom line: a credit against the whole invoice
        return _spread(own, own.amount, own.tax_amount, credited, path)
    found = next((li for li in credited.lines if li.line_id == target), None)
    if found is None:
        raise MappingError(f"{path} credits invoice line {target}, which invoice "
                           f"{credited.id} does not hold", code="unknown_invoice_line")
    return (_crediting(own, found, own.amount, own.tax_amount, own.line_id),)


def _crediting(own: DocumentLine, credited: DocumentLine, amount: Money, tax: Money,
               line_id: str) -> DocumentLine:
    """`own` as a credit of the invoice line `credited`: its product, period and contract
    line (a one-off invoice's line is its own contract line)."""
    return replace(own, line_id=line_id, product_id=credited.product_id, amount=amount,
                   tax_amount=tax, service_start=credited.service_start,
                   service_end=credited.service_end, proration=credited.proration,
                   contract_line_id=credited.contract_line_id or credited.line_id)


def _spread(own: DocumentLine, amount: Money, tax: Money, credited: Invoice,
            path: str) -> tuple[DocumentLine, ...]:
    """`amount` and `tax` of one line shared over the invoice's billing lines (one part
    per invoice line). With a breakdown, each jurisdiction line is shared alike and a
    part's tax is the sum of its shares (so each jurisdiction's total stays exact)."""
    billing = _billing(credited, path)
    weights = [(li.amount + li.tax_amount).to_minor() for li in billing]
    shares = _shared_details(own.taxes, weights)
    taxed = (tax.allocate(weights) if not own.taxes
             else tuple(total([d.amount for d in found], tax.currency) for found in shares))
    parts = zip(billing, amount.allocate(weights), taxed, shares, strict=True)
    return tuple(replace(_crediting(own, li, part, part_tax, f"{own.line_id}/{li.line_id}"),
                         taxes=found)
                 for li, part, part_tax, found in parts
                 if not (part.is_zero and part_tax.is_zero))


def _shared_details(found: tuple[TaxDetail, ...],
                    weights: list[int]) -> list[tuple[TaxDetail, ...]]:
    """Each jurisdiction line split by `weights` (largest remainder), per part."""
    split = [tuple(replace(d, taxable=base, amount=share) for base, share in zip(
                 d.taxable.allocate(weights), d.amount.allocate(weights), strict=True))
             for d in found]
    return [tuple(column[i] for column in split) for i in range(len(weights))]


def _billing(inv: Invoice, path: str) -> list[DocumentLine]:
    """The lines that bill something (with tax), the weights of a credit spread over an
    invoice in proportion to what each billed (largest remainder)."""
    billing = [li for li in inv.lines if (li.amount + li.tax_amount).amount > 0]
    if not billing:
        raise MappingError(f"{path}: invoice {inv.id} has no line to credit",
                           code="unknown_invoice_line")
    return billing


def void_memo(inv: Obj, voided: Invoice, fallback: date) -> CreditMemo:
    """The reversal of a voided invoice: all its lines and tax, set against it."""
    on = _on(inv, "voided_at", fallback)
    return built("invoice", lambda: CreditMemo(
        f"{voided.id}_void", f"{voided.number}-VOID", voided.id, voided.customer_id,
        voided.legal_entity, voided.currency, on, VOID, voided.lines, voided.subtotal,
        voided.tax_total, voided.total, refs(voided.id)))


def write_off_memo(inv: Obj, owed: Invoice, fallback: date) -> CreditMemo | None:
    """The write-off of what an uncollectible invoice still owed (no tax: it stays owed),
    spread over its lines."""
    remaining = minor(inv, "amount_remaining", owed.currency, "invoice")
    if remaining.amount <= 0:
        return None
    on = _on(inv, "marked_uncollectible_at", fallback)
    zero = Money.zero(owed.currency)
    billing = _billing(owed, "invoice")
    parts = remaining.allocate([(li.amount + li.tax_amount).to_minor() for li in billing])
    lines = tuple(replace(li, description=f"Written off: {li.description}", amount=part,
                          tax_amount=zero, taxes=(),
                          contract_line_id=li.contract_line_id or li.line_id)
                  for li, part in zip(billing, parts, strict=True) if not part.is_zero)
    return built("invoice", lambda: CreditMemo(
        f"{owed.id}_uncollectible", f"{owed.number}-WO", owed.id, owed.customer_id,
        owed.legal_entity, owed.currency, on, WRITE_OFF, lines, remaining, zero, remaining,
        refs(owed.id), remaining))


def _on(inv: Obj, transition: str, fallback: date) -> date:
    moment = child(inv, "status_transitions").get(transition)
    return fallback if moment is None else day(moment, f"invoice.status_transitions.{transition}")


# -- handlers ---------------------------------------------------------------------------------

INVOICE_ISSUED = frozenset({"invoice.finalized", "invoice.created"})
INVOICE_PAID = frozenset({"invoice.paid", "invoice.payment_succeeded"})
IGNORED = frozenset({
    "invoice.updated", "invoice.upcoming", "invoice.sent", "invoice.payment_failed",
    "invoice.payment_action_required", "invoice.finalization_failed", "invoice.overdue",
    "invoice.will_be_due", "invoice.deleted",  # only drafts can be deleted
    "credit_note.updated",  # only memo and metadata can change
})
# A voided credit note would re-open what it credited: not mapped yet (finance sees it).
UNSUPPORTED = frozenset({"credit_note.voided"})


def _credited_invoice(event: Obj) -> tuple[Fetch, ...]:
    invoice_id = id_of(snapshot(event).get("invoice"))
    return () if invoice_id is None else (Fetch(INVOICE, "invoice", invoice_id),)


def _credit_note_related(event: Obj) -> tuple[Fetch, ...]:
    return _credited_invoice(event) + taxes.rates_named(event)


RELATED: dict[str, Planner] = {
    **{t: taxes.rates_named for t in INVOICE_ISSUED | INVOICE_PAID
       | {"invoice.voided", "invoice.marked_uncollectible"}},
    "credit_note.created": _credit_note_related,
}


def needed(plan: tuple[Fetch, ...], d: Delivery,
           settings: SourceSettings) -> tuple[Fetch, ...]:
    """The fetches a delivery must carry to be mapped: a document issued before breakdowns
    (`taxes.breaks_down`) needs no tax rate, so a body stored then maps as it did."""
    obj = d.object
    dated = d.related.get(INVOICE) if obj.get("object") == "credit_note" else obj
    if dated is None or taxes.breaks_down(dated, settings):
        return plan
    return tuple(f for f in plan if f.object_type != taxes.TAX_RATE)


def _invoice(d: Delivery, settings: SourceSettings) -> list[AnyEvent]:
    obj = d.object
    if obj.get("status") == "draft":
        return []  # not issued yet: invoice.finalized follows
    issued: list[AnyEvent] = [InvoiceIssued(invoice(obj, settings, taxes.carried_rates(d)))]
    if d.type in INVOICE_PAID:
        issued += [PaymentApplied(paid) for paid in invoice_payments(d, settings)]
    return issued


def _voided(d: Delivery, settings: SourceSettings) -> list[AnyEvent]:
    obj = d.object
    if child(obj, "status_transitions").get("marked_uncollectible_at") is not None:
        raise MappingError(f"invoice {obj.get('id')} was written off before it was voided: "
                           "reverse the write-off in the books first",
                           code="void_after_write_off")
    voided = invoice(obj, settings, taxes.carried_rates(d))
    events: list[AnyEvent] = [InvoiceIssued(voided)]
    if voided.total.amount > 0:
        events.append(CreditMemoIssued(void_memo(obj, voided, day(d.created, "event.created"))))
    return events


def _uncollectible(d: Delivery, settings: SourceSettings) -> list[AnyEvent]:
    owed = invoice(d.object, settings, taxes.carried_rates(d))
    memo = write_off_memo(d.object, owed, day(d.created, "event.created"))
    return [InvoiceIssued(owed)] + ([CreditMemoIssued(memo)] if memo is not None else [])


def _credit_note(d: Delivery, settings: SourceSettings) -> list[AnyEvent]:
    fetched = d.related.get(INVOICE)
    if fetched is None:  # the event names no invoice: there was nothing to fetch
        raise MappingError("credit_note.invoice is required", code="missing_field")
    credited = invoice(fetched, settings)  # its lines are what matters here, not their tax
    rates = taxes.carried_rates(d) if taxes.breaks_down(fetched, settings) else None
    return [CreditMemoIssued(credit_memo(d.object, credited, settings, rates))]


HANDLERS: dict[str, Handler] = {
    **{t: _invoice for t in INVOICE_ISSUED | INVOICE_PAID},
    "invoice.voided": _voided,
    "invoice.marked_uncollectible": _uncollectible,
    "credit_note.created": _credit_note,
}
