"""Stripe Tax's result on invoice and credit note lines as the canonical breakdown
(`DocumentLine.taxes`), in the current API shape (`taxes[]`) and the older one localstripe
answers in (`tax_amounts[]`); customers' tax region and VAT id; documents issued before
`tax_breakdown_from` keep the shape they were first mapped in. Shapes: `tests/stripeshapes`
(Stripe's published examples; `taxes.py` says which OpenAPI schemas)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from finsync.connectors.stripe.delivery import Fetch
from finsync.connectors.stripe.mapping import fetch_after, fetch_plan
from finsync.connectors.stripe.objects import SourceSettings
from finsync.connectors.stripe.taxes import document_taxes, jurisdiction, rate_of
from finsync.domain.errors import MappingError
from finsync.domain.events import CreditMemoIssued, CustomerUpserted, InvoiceIssued
from finsync.domain.invoice import CreditMemo, Invoice
from finsync.domain.limits import InputLimits, check_event
from finsync.domain.money import Money
from finsync.domain.tax import TaxDetail, TaxTreatment
from tests.stripeshapes import DAY, T0, delivered, event, webhook
from tests.stripeshapes.documents import credit_note, credit_note_line, invoice, line
from tests.stripeshapes.taxes import (
    ERIE_COUNTY,
    NY_STATE,
    VAT_DE,
    customer,
    rate,
    related_rates,
    tax,
    tax_amount,
)
from tests.unit.stripe.mapped import SETTINGS, carried, event_of, mapped, only

TAXABLE, EXEMPT = TaxTreatment.TAXABLE, TaxTreatment.EXEMPT
REVERSE, NOT_TAXABLE = TaxTreatment.REVERSE_CHARGE, TaxTreatment.NOT_TAXABLE


def eur(amount: str) -> Money:
    return Money.of(amount, "EUR")


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


def issued(inv: dict[str, Any], settings: SourceSettings = SETTINGS) -> Invoice:
    return only(carried(event("invoice.finalized", inv, evt="evt_inv")), InvoiceIssued,
                settings).invoice


def credited(note: dict[str, Any], inv: dict[str, Any],
             settings: SourceSettings = SETTINGS) -> CreditMemo:
    evt = event("credit_note.created", note, evt="evt_cn")
    return only(carried(evt, invoice=inv), CreditMemoIssued, settings).credit_memo


def ny_erie(net: int) -> list[dict[str, Any]]:
    """New York State 4 % and Erie County 4.75 % on `net` cents (exact on multiples of 400)."""
    return [tax(net * 4 // 100, "txr_ny", taxable=net),
            tax(net * 475 // 10_000, "txr_erie", taxable=net)]


# -- one jurisdiction line per tax entry -------------------------------------------------------

def test_exclusive_vat_is_one_german_jurisdiction_line() -> None:
    # 1 000.00 EUR + 19 % VAT on top = 190.00
    inv = issued(invoice([line("il_1", 100_000, currency="eur",
                               taxes=[tax(19_000, taxable=100_000)])], currency="eur"))
    (li,) = inv.lines
    assert li.taxes == (TaxDetail("DE", "vat", Decimal("0.19"), eur("1000.00"),
                                  eur("190.00"), TAXABLE),)
    assert (li.amount, li.tax_amount, inv.total) == (eur("1000.00"), eur("190.00"),
                                                     eur("1190.00"))


def test_inclusive_vat_is_taken_out_of_the_line_and_keeps_stripes_base() -> None:
    # 119.00 EUR with 19 % VAT included: 100.00 net + 19.00 VAT; Stripe's base 100.00
    inv = issued(invoice([line("il_1", 11_900, currency="eur",
                               taxes=[tax(1_900, behavior="inclusive", taxable=10_000)])],
                         currency="eur"))
    (li,) = inv.lines
    assert (li.amount, li.tax_amount) == (eur("100.00"), eur("19.00"))
    assert li.taxes == (TaxDetail("DE", "vat", Decimal("0.19"), eur("100.00"), eur("19.00")),)


def test_without_stripes_base_the_line_net_is_the_base() -> None:
    # taxable_amount null (Stripe leaves it out for some rates): the base is the line's net
    inv = issued(invoice([line("il_1", 11_900, currency="eur",
                               taxes=[tax(1_900, behavior="inclusive")])], currency="eur"))
    assert inv.lines[0].taxes[0].taxable == eur("100.00")


def test_a_reverse_charged_line_says_so_at_zero() -> None:
    # B2B in Germany with a valid VAT id: 0.00, the customer accounts for the VAT
    inv = issued(invoice([line("il_1", 100_000, currency="eur",
                               taxes=[tax(0, "txr_vat_rc", reason="reverse_charge",
                                          taxable=100_000)])], currency="eur"))
    (detail,) = inv.lines[0].taxes
    assert (detail.jurisdiction, detail.treatment, detail.rate, detail.amount) == (
        "DE", REVERSE, Decimal("0"), eur("0.00"))
    assert inv.tax_total == eur("0.00")


def test_an_exempt_customer_is_exempt_in_each_jurisdiction() -> None:
    inv = issued(invoice([line("il_1", 10_000, taxes=[
        tax(0, "txr_ny", reason="customer_exempt", taxable=10_000),
        tax(0, "txr_erie", reason="customer_exempt", taxable=10_000)])]))
    assert [(d.jurisdiction, d.treatment) for d in inv.lines[0].taxes] == [
        ("US-NY", EXEMPT), ("US-NY-ERIE_COUNTY", EXEMPT)]


@pytest.mark.parametrize("reason", ["not_subject_to_tax", "product_exempt", "zero_rated",
                                    "not_collecting"])
def test_untaxed_reasons_are_not_taxable(reason: str) -> None:
    inv = issued(invoice([line("il_1", 10_000, taxes=[tax(0, "txr_ny", reason=reason)])]))
    assert inv.lines[0].taxes[0].treatment is NOT_TAXABLE


def test_tax_stripe_collected_is_taxable_whatever_its_reason() -> None:
    inv = issued(invoice([line("il_1", 10_000, taxes=[
        tax(400, "txr_ny", reason="not_subject_to_tax")])]))
    assert inv.lines[0].taxes[0].treatment is TAXABLE


def test_a_state_and_its_county_are_two_jurisdiction_lines() -> None:
    # 400.00 USD in Erie County, NY: state 4 % = 16.00, county 4.75 % = 19.00; tax 35.00
    inv = issued(invoice([line("il_1", 40_000, taxes=ny_erie(40_000))]))
    (li,) = inv.lines
    assert [(d.jurisdiction, d.tax_type, d.rate, d.amount) for d in li.taxes] == [
        ("US-NY", "sales_tax", Decimal("0.04"), usd("16.00")),
        ("US-NY-ERIE_COUNTY", "sales_tax", Decimal("0.0475"), usd("19.00"))]
    assert li.tax_amount == usd("35.00") and inv.total == usd("435.00")


# -- the older shape (localstripe's) -----------------------------------------------------------

def _old(entries: list[dict[str, Any]], amount: int = 10_000) -> dict[str, Any]:
    li = line("il_1", amount, currency="eur")
    del li["taxes"]
    li["tax_amounts"] = entries
    return dict(invoice([line("il_1", amount, currency="eur")], currency="eur"),
                lines={"object": "list", "has_more": False, "data": [li]},
                total=amount + sum(e["amount"] for e in entries if not e["inclusive"]))


def test_older_tax_amounts_with_an_expanded_rate_need_nothing_fetched() -> None:
    inv = _old([tax_amount(1_900, VAT_DE, reason="standard_rated", taxable=10_000)])
    evt = dict(event("invoice.finalized", inv, evt="evt_inv"), api_version="2017-08-15")
    assert fetch_plan(evt) == ()
    doc = only(webhook(evt), InvoiceIssued).invoice
    assert doc.lines[0].taxes == (TaxDetail("DE", "vat", Decimal("0.19"), eur("100.00"),
                                            eur("19.00")),)


def test_older_tax_amounts_inclusive_with_the_rate_fetched_beside_the_event() -> None:
    # 100.00 EUR with 19 % included: 84.03 + 15.97
    inv = _old([tax_amount(1_597, "txr_vat", inclusive=True)])
    evt = dict(event("invoice.finalized", inv, evt="evt_inv"), api_version="2017-08-15")
    assert fetch_plan(evt) == (Fetch("tax_rate:txr_vat", "tax_rate", "txr_vat"),)
    assert mapped(webhook(evt)) == []  # the poller's copy carries the rate
    (li,) = only(delivered(evt, related=related_rates("txr_vat")), InvoiceIssued).invoice.lines
    assert (li.amount, li.tax_amount) == (eur("84.03"), eur("15.97"))
    assert li.taxes == (TaxDetail("DE", "vat", Decimal("0.19"), eur("84.03"), eur("15.97")),)


def test_a_rate_that_names_no_country_leaves_the_tax_whole() -> None:
    # a manual rate without a country (localstripe's never have one): no jurisdiction to
    # write, so the line keeps its 10.00 of tax with no breakdown (never a guessed one)
    inv = issued(invoice([line("il_1", 10_000, taxes=[tax(1_000, "txr_manual")])]))
    assert inv.lines[0].taxes == () and inv.tax_total == usd("10.00")


def test_a_rate_the_delivery_does_not_carry_is_never_guessed() -> None:
    inv = invoice([line("il_1", 10_000, taxes=[tax(400, "txr_ny")]),
                   line("il_2", 10_000, taxes=[tax(475, "txr_erie")])])
    evt = event("invoice.finalized", inv, evt="evt_inv")
    assert mapped(delivered(evt, related=related_rates("txr_ny"))) == []  # not all planned
    partial = dict(inv, lines=dict(inv["lines"], has_more=True, data=inv["lines"]["data"][:1]))
    evt = event("invoice.finalized", partial, evt="evt_inv")
    with pytest.raises(MappingError) as caught:  # the second line's rate was not fetched
        mapped(delivered(evt, current=inv, related=related_rates("txr_ny")))
    assert caught.value.code == "partial_object"


def test_the_rates_of_lines_beyond_the_events_page_are_fetched_after_the_invoice() -> None:
    inv = invoice([line("il_1", 10_000, taxes=[tax(400, "txr_ny")]),
                   line("il_2", 10_000, taxes=[tax(475, "txr_erie")])])
    partial = dict(inv, lines=dict(inv["lines"], has_more=True,
                                   data=inv["lines"]["data"][:1]))
    evt = event("invoice.finalized", partial, evt="evt_inv")
    assert fetch_plan(evt) == (Fetch("current", "invoice", "in_1"),)
    assert fetch_after(inv) == (Fetch("tax_rate:txr_ny", "tax_rate", "txr_ny"),
                                Fetch("tax_rate:txr_erie", "tax_rate", "txr_erie"))
    doc = only(delivered(evt, current=inv, related=related_rates("txr_ny", "txr_erie")),
               InvoiceIssued).invoice
    assert [d.jurisdiction for li in doc.lines for d in li.taxes] == ["US-NY",
                                                                      "US-NY-ERIE_COUNTY"]


# -- rates and jurisdictions -------------------------------------------------------------------

@pytest.mark.parametrize(("percentage", "fraction"), [
    (19, "0.19"), (8.875, "0.08875"), (4.75, "0.0475"), (0, "0"), ("7.25", "0.0725")])
def test_a_rate_is_the_percentage_over_a_hundred_from_its_text(percentage: Any,
                                                               fraction: str) -> None:
    assert rate_of({"id": "txr_1", "percentage": percentage}, "x") == Decimal(fraction)


@pytest.mark.parametrize("percentage", [100, -1, None, True, "NaN", "1e400"])
def test_a_percentage_outside_zero_to_a_hundred_is_refused(percentage: Any) -> None:
    with pytest.raises(MappingError) as caught:
        rate_of({"id": "txr_1", "percentage": percentage}, "x")
    assert caught.value.code == "invalid_tax_rate"


@pytest.mark.parametrize(("fields", "code"), [
    ({"country": "DE"}, "DE"),
    ({"country": "US", "state": "NY", "level": "state"}, "US-NY"),
    ({"country": "US", "state": "ny", "level": None}, "US-NY"),
    ({"country": "US", "state": "NY", "level": "city", "jurisdiction": "NEW YORK CITY"},
     "US-NY-NEW_YORK_CITY"),
    ({"country": "US", "state": "CO", "level": "multiple",
      "jurisdiction": "Colorado - Regional Transportation District"},
     "US-CO-COLORADO_REGIONA"),  # its name cut to 16 characters
    ({"country": None}, None),
    ({"country": "US", "state": "New York"}, None),  # not an ISO 3166-2 code
    ({"country": "US", "level": "county", "jurisdiction": "ERIE"}, None),  # no state
])
def test_jurisdiction_codes(fields: dict[str, Any], code: str | None) -> None:
    obj = rate("txr_1", 5, country=fields["country"], state=fields.get("state"),
               jurisdiction=fields.get("jurisdiction"), level=fields.get("level"))
    assert jurisdiction(obj) == code


# -- credit notes, voids and write-offs ---------------------------------------------------------

def _ny_invoice() -> dict[str, Any]:
    # seats 400.00 + 35.00 tax, analytics 800.00 + 70.00 tax (NY 4 % + Erie 4.75 %)
    return invoice([line("il_1", 40_000, taxes=ny_erie(40_000)),
                    line("il_2", 80_000, product="prod_analytics", price="price_analytics",
                         taxes=ny_erie(80_000))])


def test_a_credit_note_reverses_the_tax_of_the_line_it_credits_per_jurisdiction() -> None:
    # 200.00 of the analytics line credited: 8.00 NY + 9.50 Erie
    note = credit_note([credit_note_line("cnli_1", 20_000, invoice_line="il_2",
                                         taxes=ny_erie(20_000))])
    (li,) = credited(note, _ny_invoice()).lines
    assert [(d.jurisdiction, d.amount, d.taxable) for d in li.taxes] == [
        ("US-NY", usd("8.00"), usd("200.00")), ("US-NY-ERIE_COUNTY", usd("9.50"),
                                                usd("200.00"))]
    assert li.tax_amount == usd("17.50")


def test_a_custom_credit_spread_over_the_lines_keeps_each_jurisdictions_tax_exact() -> None:
    # 100.00 + 4.00 NY + 4.75 Erie spread over 435.00 : 870.00 (1 : 2):
    # net 33.33 / 66.67; NY 1.33 / 2.67; Erie 1.58 / 3.17 (largest remainder each)
    note = credit_note([credit_note_line("cnli_1", 10_000, invoice_line=None,
                                         taxes=ny_erie(10_000))], pre_payment=0)
    memo = credited(note, _ny_invoice())
    assert [[(d.jurisdiction, str(d.amount.amount)) for d in li.taxes] for li in memo.lines] == [
        [("US-NY", "1.33"), ("US-NY-ERIE_COUNTY", "1.58")],
        [("US-NY", "2.67"), ("US-NY-ERIE_COUNTY", "3.17")]]
    assert [str(li.tax_amount.amount) for li in memo.lines] == ["2.91", "5.84"]
    assert memo.tax_total == usd("8.75")  # 4.00 + 4.75, as Stripe credited


def test_a_void_memo_reverses_every_jurisdiction_line() -> None:
    raw = _ny_invoice()
    voided = dict(raw, status="void", status_transitions=dict(
        raw["status_transitions"], voided_at=T0 + 3 * DAY))
    inv, memo = (e.event.document for e in mapped(carried(event("invoice.voided", voided,
                                                                  evt="evt_void"))))
    assert isinstance(memo, CreditMemo) and isinstance(inv, Invoice)
    assert [li.taxes for li in memo.lines] == [li.taxes for li in inv.lines] != [(), ()]


def test_a_write_off_keeps_the_tax_owed_so_its_lines_carry_no_breakdown() -> None:
    raw = dict(_ny_invoice(), status="uncollectible", amount_remaining=130_500)
    raw["status_transitions"] = dict(raw["status_transitions"],
                                     marked_uncollectible_at=T0 + 40 * DAY)
    memo = mapped(carried(event("invoice.marked_uncollectible", raw, evt="evt_wo")))[1]
    assert isinstance(memo.event.document, CreditMemo)
    assert [li.taxes for li in memo.event.document.lines] == [(), ()]


# -- documents issued before breakdowns keep their first shape ---------------------------------

UPGRADE = SourceSettings("le_us", tax_breakdown_from=datetime.fromtimestamp(T0 + DAY, UTC))


def test_an_invoice_issued_before_the_upgrade_maps_again_to_the_body_it_was_stored_with(
        ) -> None:
    inv = invoice([line("il_1", 40_000, taxes=ny_erie(40_000))])  # finalized at T0
    evt = event("invoice.finalized", inv, evt="evt_inv")
    stored = only(webhook(evt), InvoiceIssued, UPGRADE).invoice  # no rate needed
    assert stored.lines[0].taxes == () and stored.tax_total == usd("35.00")
    paid = dict(inv, status="paid", status_transitions=dict(
        inv["status_transitions"], paid_at=T0 + 2 * DAY))
    again = mapped(carried(event("invoice.voided", dict(paid, status="void"), evt="evt_2",
                                 created=T0 + 3 * DAY)), UPGRADE)
    assert event_of(again[0], InvoiceIssued).invoice == stored  # a duplicate, no exception
    after = dict(inv, status_transitions=dict(inv["status_transitions"],
                                              finalized_at=T0 + 2 * DAY))
    assert issued(after, UPGRADE).lines[0].taxes != ()


def test_a_credit_note_follows_the_shape_of_the_invoice_it_credits() -> None:
    note = credit_note([credit_note_line("cnli_1", 20_000, invoice_line="il_2",
                                         taxes=ny_erie(20_000))], created=T0 + 5 * DAY)
    evt = event("credit_note.created", note, evt="evt_cn")
    (old,) = only(delivered(evt, related={"invoice": _ny_invoice()}), CreditMemoIssued,
                  UPGRADE).credit_memo.lines
    assert old.taxes == () and old.tax_amount == usd("17.50")


# -- the books' tax per jurisdiction is the mapping's ---------------------------------------------

def test_document_taxes_sum_what_the_mapping_breaks_down() -> None:
    raw = _ny_invoice()
    rates = {"txr_ny": NY_STATE, "txr_erie": ERIE_COUNTY}
    # NY 16.00 + 32.00 = 48.00, Erie 19.00 + 38.00 = 57.00
    assert document_taxes(raw, "USD", rates, "invoice") == {"US-NY": 4_800,
                                                            "US-NY-ERIE_COUNTY": 5_700}
    assert document_taxes(raw, "USD", None, "invoice") == {"": 10_500}
    assert document_taxes(raw, "USD", {"txr_ny": NY_STATE}, "invoice") == {"": 10_500}


# -- customers ----------------------------------------------------------------------------------

def _customer(obj: dict[str, Any], settings: SourceSettings = SETTINGS) -> Any:
    evt = event("customer.updated", obj, evt="evt_cus")
    return only(delivered(evt, version=1), CustomerUpserted, settings).customer


def test_a_customers_state_code_is_its_billing_region() -> None:
    assert _customer(customer("cus_1", country="US", state="NY")).billing_region == "NY"
    assert _customer(customer("cus_1", country="US", state="ny ")).billing_region == "NY"


@pytest.mark.parametrize(("country", "state"), [("US", "New York"), ("US", "ZZ"),
                                                ("DE", "BY"), ("US", None)])
def test_a_state_that_is_no_region_code_is_not_guessed(country: str, state: str | None) -> None:
    assert _customer(customer("cus_1", country=country, state=state)).billing_region is None


def test_a_customers_first_eu_vat_id_is_its_tax_id() -> None:
    obj = customer("cus_1", country="DE", tax_ids=(("us_ein", "12-3456789"),
                                                   ("eu_vat", "DE123456789"),
                                                   ("gb_vat", "GB123456789")))
    assert _customer(obj).tax_id == "DE123456789"
    assert _customer(customer("cus_1", country="DE")).tax_id is None


def test_a_vat_id_beyond_its_limit_is_refused() -> None:
    obj = customer("cus_1", country="DE", tax_ids=(("eu_vat", "DE" + "1" * 80),))
    with pytest.raises(MappingError) as caught:
        _customer(obj)
    assert caught.value.code == "invalid_field"


def test_a_customer_event_from_before_the_upgrade_maps_as_it_did() -> None:
    obj = customer("cus_1", country="US", state="NY", tax_ids=(("eu_vat", "DE1"),))
    old = _customer(obj, UPGRADE)
    assert (old.billing_region, old.tax_id) == (None, None)
    assert old == dataclasses.replace(_customer(obj), billing_region=None, tax_id=None)


# -- hostile documents ---------------------------------------------------------------------------

def test_a_document_naming_too_many_rates_is_planned_bounded_and_refused() -> None:
    # 300 lines, each with its own rate: the poller fetches at most RATES_MAX (250) and never
    # fails; the mapping refuses the document
    lines = [line(f"il_{n}", 100, taxes=[tax(0, f"txr_{n}", reason="zero_rated")])
             for n in range(300)]
    evt = event("invoice.finalized", invoice(lines), evt="evt_inv")
    assert len(fetch_plan(evt)) == 250
    with pytest.raises(MappingError) as caught:
        mapped(delivered(evt, related={f"tax_rate:txr_{n}": rate(f"txr_{n}", 0, country="DE")
                                       for n in range(250)}))
    assert caught.value.code == "too_many_tax_rates"


def test_a_local_rate_whose_name_is_no_text_names_no_jurisdiction() -> None:
    odd = dict(rate("txr_1", 1, country="US", state="NY", level="city"),
               jurisdiction={"name": "NYC"})
    assert jurisdiction(odd) is None


def test_a_rate_finer_than_the_input_limit_is_refused_at_intake() -> None:
    # 7.1234567890123 % is 0.071234567890123: 15 decimal places, above DECIMAL_PLACES_MAX (12)
    fine = dict(rate("txr_fine", "7.1234567890123", country="DE"))
    inv = invoice([line("il_1", 10_000, currency="eur", taxes=[tax(712, "txr_fine")])],
                  currency="eur")
    evt = event("invoice.finalized", inv, evt="evt_inv")
    doc = only(delivered(evt, related={"tax_rate:txr_fine": fine}), InvoiceIssued)
    with pytest.raises(MappingError) as caught:
        check_event(doc, InputLimits(), date(2026, 11, 27))
    assert caught.value.code == "number_out_of_range"
    usual = InvoiceIssued(issued(invoice([line("il_1", 40_000, taxes=ny_erie(40_000))])))
    check_event(usual, InputLimits(), date(2026, 11, 27))  # 0.04 and 0.0475 pass
