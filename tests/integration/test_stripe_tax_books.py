"""Stripe's books answer the tax stream (`StripeBooks.tax_amounts`) on both databases: each
document's tax per jurisdiction as the mapping books it, read from the mirror (the poller's
deliveries, tax rates fetched beside each document).

The account (current API shape, amounts in cents as Stripe sends them):
- in_ny (cus_ny, USD), finalized 2 Nov: il_1 400.00 and il_2 800.00, each taxed by New York
  State 4 % and Erie County 4.75 %: NY 16.00 + 32.00 = 48.00, Erie 19.00 + 38.00 = 57.00.
- cn_ny on 10 Nov credits 200.00 of il_2: NY -8.00, Erie -9.50.
- in_de (cus_de, EUR), finalized 3 Nov: 1,000.00 + 19 % VAT = 190.00; voided 20 Nov, so its
  void memo in_de_void reverses the 190.00 that day.
- in_rc (cus_rc, EUR), 5 Nov: 1,000.00 reverse charged (0.00): no tax, no row.
- in_old (cus_ny, USD), finalized 1 Nov 09:00, before breakdowns began (1 Nov 12:00): its
  4.00 of NY tax is tax without a breakdown (jurisdiction "").
- in_dec (cus_ny, USD), finalized 1 Dec: 100.00 + NY 4.00 + Erie 4.75.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import Engine

from finsync.bootstrap import build_stripe_mirror
from finsync.connectors.ports import TaxAmount
from finsync.connectors.stripe.delivery import snapshot
from finsync.connectors.stripe.mapping import translate
from finsync.connectors.stripe.objects import SourceSettings
from finsync.connectors.stripe.records import StripeBillingRecords, StripeBooks
from finsync.connectors.stripe.taxes import rate_ids
from finsync.domain.events import CreditMemoIssued, InvoiceIssued
from finsync.domain.invoice import CreditMemo, Invoice
from tests.stripeshapes import DAY, delivered, event
from tests.stripeshapes.company import at
from tests.stripeshapes.documents import credit_note, credit_note_line, invoice, line
from tests.stripeshapes.taxes import related_rates, tax

Obj = dict[str, Any]
ENTITY = "le_us"
SINCE = datetime(2026, 11, 1, 12, tzinfo=UTC)
SETTINGS = SourceSettings(ENTITY, tax_breakdown_from=SINCE)


def nov(day: int, hour: int = 9) -> int:
    return at(2026, 11, day, hour)


def ny_erie(net: int) -> list[Obj]:
    return [tax(net * 4 // 100, "txr_ny", taxable=net),
            tax(net * 475 // 10_000, "txr_erie", taxable=net)]


def _ny() -> Obj:
    return invoice([line("il_1", 40_000, taxes=ny_erie(40_000), invoice_id="in_ny"),
                    line("il_2", 80_000, taxes=ny_erie(80_000), invoice_id="in_ny")],
                   invoice_id="in_ny", customer="cus_ny", created=nov(2), finalized=nov(2))


def _de(**changes: Any) -> Obj:
    return dict(invoice([line("il_de", 100_000, currency="eur", invoice_id="in_de",
                              taxes=[tax(19_000, taxable=100_000)])],
                        invoice_id="in_de", customer="cus_de", currency="eur",
                        created=nov(3), finalized=nov(3)), **changes)


def account() -> list[Obj]:
    """The account's events, oldest first."""
    voided = _de(status="void")
    voided["status_transitions"] = dict(voided["status_transitions"], voided_at=nov(20))
    note = credit_note([credit_note_line("cnli_1", 20_000, invoice_line="il_2",
                                         taxes=ny_erie(20_000))],
                       note_id="cn_ny", invoice_id="in_ny", customer="cus_ny",
                       created=nov(10))
    return [
        event("invoice.finalized", invoice([line("il_o", 10_000, taxes=[
            tax(400, "txr_ny")], invoice_id="in_old")], invoice_id="in_old",
            customer="cus_ny", created=nov(1), finalized=nov(1)), evt="evt_1",
            created=nov(1)),
        event("invoice.finalized", _ny(), evt="evt_2", created=nov(2)),
        event("invoice.finalized", _de(), evt="evt_3", created=nov(3)),
        event("invoice.finalized", invoice([line("il_rc", 100_000, currency="eur", taxes=[
            tax(0, "txr_vat_rc", reason="reverse_charge", taxable=100_000)],
            invoice_id="in_rc")], invoice_id="in_rc", customer="cus_rc", currency="eur",
            created=nov(5), finalized=nov(5)), evt="evt_4", created=nov(5)),
        event("credit_note.created", note, evt="evt_5", created=nov(10)),
        event("invoice.voided", voided, evt="evt_6", created=nov(20)),
        event("invoice.finalized", invoice([line("il_d", 10_000, taxes=ny_erie(10_000),
                                                 invoice_id="in_dec")],
                                           invoice_id="in_dec", customer="cus_ny",
                                           created=nov(30) + 2 * DAY,
                                           finalized=nov(30) + 2 * DAY),
              evt="evt_7", created=nov(30) + 2 * DAY),
    ]


def bodies() -> list[bytes]:
    """Each event as the poller delivers it: the tax rates its document names beside it,
    and the invoice a credit note credits."""
    found = []
    for evt in account():
        related: dict[str, Obj] = related_rates(*rate_ids(snapshot(evt)))
        if evt["type"] == "credit_note.created":
            related["invoice"] = _ny()
        found.append(delivered(evt, related=related))
    return found


@pytest.fixture
def books(engine: Engine) -> Iterator[StripeBooks]:
    build_stripe_mirror(engine).record("stripe", bodies())
    with StripeBillingRecords("stripe", engine, "stripe", ENTITY, SINCE).books() as snapshot:
        yield snapshot


def row(document: str, jurisdiction: str, currency: str, cents: int,
        month: str = "2026-11") -> TaxAmount:
    return TaxAmount(document, jurisdiction, month, currency, cents)


def test_tax_per_document_and_jurisdiction_in_code_point_order(books: StripeBooks) -> None:
    assert list(books.tax_amounts(ENTITY, date(2026, 11, 30))) == [
        row("cn_ny", "US-NY", "USD", -800),              # 200.00 x 4 %
        row("cn_ny", "US-NY-ERIE_COUNTY", "USD", -950),  # 200.00 x 4.75 %
        row("in_de", "DE", "EUR", 19_000),
        row("in_de_void", "DE", "EUR", -19_000),  # "in_de_void" < "in_dec" ('_' < 'c')
        row("in_ny", "US-NY", "USD", 4_800),             # 16.00 + 32.00
        row("in_ny", "US-NY-ERIE_COUNTY", "USD", 5_700),  # 19.00 + 38.00
        row("in_old", "", "USD", 400),  # issued before breakdowns: as the ledger booked it
    ]  # in_rc: reverse charged, no tax; in_dec: issued in December


def test_a_day_sees_what_was_issued_by_then(books: StripeBooks) -> None:
    assert [(r.document_id, r.amount_minor) for r in books.tax_amounts(
        ENTITY, date(2026, 11, 9))] == [("in_de", 19_000), ("in_ny", 4_800), ("in_ny", 5_700),
                                        ("in_old", 400)]
    december = [r for r in books.tax_amounts(ENTITY, date(2026, 12, 31))
                if r.document_id == "in_dec"]
    assert december == [row("in_dec", "US-NY", "USD", 400, "2026-12"),
                        row("in_dec", "US-NY-ERIE_COUNTY", "USD", 475, "2026-12")]
    assert list(books.tax_amounts("le_other", date(2026, 12, 31))) == []


def test_the_books_say_what_the_mapping_booked(books: StripeBooks) -> None:
    """Per document and jurisdiction, the canonical documents the same deliveries map to
    carry exactly the books' tax (memos negative), so the seventh check compares like with
    like."""
    documents: dict[str, Invoice | CreditMemo] = {}  # a document mapped twice is one
    for body in bodies():
        for draft in translate(SETTINGS, "stripe", body):
            event_ = draft.event
            if isinstance(event_, InvoiceIssued | CreditMemoIssued):
                documents[event_.document.id] = event_.document
    booked: dict[tuple[str, str], int] = {}
    for doc in documents.values():
        _add(booked, doc)
    expected = sorted((doc, place, cents) for (doc, place), cents in booked.items() if cents)
    got = [(r.document_id, r.jurisdiction, r.amount_minor)
           for r in books.tax_amounts(ENTITY, date(2026, 12, 31))]
    assert got == expected and len(got) == 9


def _add(booked: dict[tuple[str, str], int], doc: Invoice | CreditMemo) -> None:
    sign = -1 if isinstance(doc, CreditMemo) else 1
    for li in doc.lines:
        parts = [(d.jurisdiction, d.amount) for d in li.taxes] or [("", li.tax_amount)]
        for place, amount in parts:
            key = (doc.id, place)
            booked[key] = booked.get(key, 0) + sign * amount.to_minor()


def test_a_rate_missing_from_the_mirror_is_tax_without_a_breakdown(engine: Engine) -> None:
    evt = event("invoice.finalized", _ny(), evt="evt_2", created=nov(2))
    build_stripe_mirror(engine).record("stripe", [delivered(evt, related=related_rates(
        "txr_ny"))])  # Erie's rate never reached the mirror
    with StripeBillingRecords("stripe", engine, "stripe", ENTITY).books() as snapshot:
        assert list(snapshot.tax_amounts(ENTITY, date(2026, 11, 30))) == [
            row("in_ny", "", "USD", 10_500)]
