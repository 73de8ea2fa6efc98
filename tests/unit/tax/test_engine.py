"""The embedded tax engine's hand-worked cases (default_tax.toml), arithmetic in comments."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest

from finsync.domain.money import Money
from finsync.domain.tax import TaxRefusedError, TaxResult, TaxTreatment
from finsync.systems.tax.certificate import ExemptionCertificate
from finsync.systems.tax.engine import quote
from finsync.systems.tax.errors import CertificateError
from finsync.systems.tax.rules import Rounding, TaxRules
from tests.unit.tax.support import RULES, line, quoted, request


def only(result: TaxResult) -> tuple[Money, Money, str, TaxTreatment, Decimal]:
    taxed = result.lines[0]
    detail = taxed.details[0]
    return taxed.net, taxed.tax, detail.jurisdiction, detail.treatment, detail.rate


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


def eur(amount: str) -> Money:
    return Money.of(amount, "EUR")


def test_taxable_state_rounds_the_line_half_even() -> None:
    # Texas, 6.25 %: 999.99 x 0.0625 = 62.499375 -> 62.50
    result = quoted(request("US", "TX", line("999.99")))
    assert only(result) == (usd("999.99"), usd("62.50"), "US-TX", TaxTreatment.TAXABLE,
                            Decimal("0.0625"))


def test_exempt_state_answers_a_zero_not_taxable_line() -> None:
    # California does not tax SaaS: 0 tax, and the jurisdiction line says why.
    result = quoted(request("US", "CA", line("999.99")))
    assert only(result) == (usd("999.99"), usd("0.00"), "US-CA", TaxTreatment.NOT_TAXABLE,
                            Decimal(0))


def test_us_customer_without_a_state_is_not_taxable_at_us() -> None:
    result = quoted(request("US", None, line("500.00")))
    assert only(result)[1:4] == (usd("0.00"), "US", TaxTreatment.NOT_TAXABLE)


def test_exemption_certificate_expiring_mid_contract() -> None:
    # NY certificate for [2026-01-01, 2026-07-01); monthly invoices of 1,000.00.
    certificate = ExemptionCertificate("cert_1", "cus_1", "US-NY", date(2026, 1, 1),
                                       date(2026, 7, 1))
    june = quoted(request("US", "NY", line("1000.00"), on=date(2026, 6, 30)), certificate)
    assert only(june)[1:4] == (usd("0.00"), "US-NY", TaxTreatment.EXEMPT)
    # 2026-07-01 is outside the half-open validity: 1,000.00 x 0.04 = 40.00
    july = quoted(request("US", "NY", line("1000.00"), on=date(2026, 7, 1)), certificate)
    assert only(july)[1:4] == (usd("40.00"), "US-NY", TaxTreatment.TAXABLE)


def test_certificate_of_another_customer_or_jurisdiction_exempts_nothing() -> None:
    others = (ExemptionCertificate("c1", "cus_2", "US-NY", date(2026, 1, 1)),
              ExemptionCertificate("c2", "cus_1", "US-TX", date(2026, 1, 1)),
              ExemptionCertificate("c3", "cus_1", "US-NY", date(2026, 1, 1), revoked=True))
    result = quoted(request("US", "NY", line("1000.00")), *others)
    assert only(result)[1] == usd("40.00")


def test_eu_reverse_charge_for_a_french_business_of_the_german_entity() -> None:
    # le_eu is in DE; FR customer with a well-formed FR VAT id: reverse charge, 0 tax.
    ask = request("FR", None, line("1000.00", "EUR"), entity="le_eu", currency="EUR",
                  tax_id="FR 40 303265045")
    assert only(quoted(ask)) == (eur("1000.00"), eur("0.00"), "FR",
                                 TaxTreatment.REVERSE_CHARGE, Decimal(0))


def test_the_same_french_customer_without_a_vat_id_pays_french_vat() -> None:
    # B2C: French VAT, 1,000.00 x 0.20 = 200.00 (document rounding: one line, same figure)
    ask = request("FR", None, line("1000.00", "EUR"), entity="le_eu", currency="EUR")
    assert only(quoted(ask)) == (eur("1000.00"), eur("200.00"), "FR", TaxTreatment.TAXABLE,
                                 Decimal("0.20"))


def test_a_german_business_of_the_german_entity_is_taxed_at_home() -> None:
    # Same country: no reverse charge; 1,000.00 x 0.19 = 190.00
    ask = request("DE", None, line("1000.00", "EUR"), entity="le_eu", currency="EUR",
                  tax_id="DE123456789")
    assert only(quoted(ask))[1:4] == (eur("190.00"), "DE", TaxTreatment.TAXABLE)


def test_an_eu_vat_id_that_is_not_well_formed_is_refused() -> None:
    ask = request("FR", None, line("1000.00", "EUR"), entity="le_eu", currency="EUR",
                  tax_id="DE123456789")  # a German id on a French address
    with pytest.raises(TaxRefusedError) as caught:
        quote(RULES, (), ask)
    assert caught.value.code == "invalid_vat_id"


def test_tax_inclusive_price_extracts_the_tax() -> None:
    # GB, 20 %, 100.00 including VAT: 100 x 0.20 / 1.20 = 16.666... -> 16.67; net 83.33;
    # 83.33 + 16.67 = 100.00.
    ask = request("GB", None, line("100.00", "GBP", inclusive=True), currency="GBP")
    net, tax, where, treatment, _ = only(quoted(ask))
    assert (net, tax, where, treatment) == (Money.of("83.33", "GBP"), Money.of("16.67", "GBP"),
                                            "GB", TaxTreatment.TAXABLE)
    assert quoted(ask).lines[0].details[0].taxable == net



def with_rounding(code: str, rounding: Rounding) -> TaxRules:
    jurisdictions = dict(RULES.jurisdictions)
    jurisdictions[code] = replace(jurisdictions[code], rounding=rounding)
    return TaxRules(jurisdictions, RULES.rates, RULES.sellers)


def test_per_line_and_per_document_rounding_differ_by_a_cent() -> None:
    # DE 19 %, three lines of 10.13: each 10.13 x 0.19 = 1.9247.
    lines = [line("10.13", "EUR", line_id=f"l{i}") for i in (1, 2, 3)]
    ask = request("DE", None, *lines, entity="le_eu", currency="EUR")
    # per line: 1.9247 -> 1.92, three times: 5.76
    by_line = quote(with_rounding("DE", Rounding.LINE), (), ask)
    assert [x.tax for x in by_line.lines] == [eur("1.92")] * 3
    assert by_line.tax_total("EUR") == eur("5.76")
    # per document (DE's default): 30.39 x 0.19 = 5.7741 -> 5.77, split by largest
    # remainder: floors 1.92 x 3 = 5.76, the cent left goes to the first of three equal
    # remainders (0.47 of a cent each): 1.93, 1.92, 1.92.
    by_document = quoted(ask)
    assert [x.tax for x in by_document.lines] == [eur("1.93"), eur("1.92"), eur("1.92")]
    assert by_document.tax_total("EUR") == eur("5.77")


def test_rates_are_effective_by_date() -> None:
    # Germany's VAT cut: 16 % from 2020-07-01, 19 % again from 2021-01-01.
    lines = (line("100.00", "EUR"),)
    cut = request("DE", None, *lines, entity="le_eu", currency="EUR", on=date(2020, 12, 31))
    back = request("DE", None, *lines, entity="le_eu", currency="EUR", on=date(2021, 1, 1))
    assert only(quoted(cut))[1] == eur("16.00")
    assert only(quoted(back))[1] == eur("19.00")


@pytest.mark.parametrize(("country", "region", "entity", "code"), [
    ("US", "ZZ", "le_us", "unknown_tax_jurisdiction"),   # a state not configured
    ("JP", None, "le_us", "unknown_tax_jurisdiction"),   # a country not configured
    ("US", "NY", "le_xx", "unknown_legal_entity"),
])
def test_what_the_engine_cannot_answer_is_refused_never_zero(
        country: str, region: str | None, entity: str, code: str) -> None:
    with pytest.raises(TaxRefusedError) as caught:
        quote(RULES, (), request(country, region, entity=entity))
    assert caught.value.code == code


def test_a_tax_code_without_a_rate_is_refused() -> None:
    with pytest.raises(TaxRefusedError) as caught:
        quote(RULES, (), request("US", "NY", line("10.00", tax_code="hardware")))
    assert caught.value.code == "unknown_tax_rate"


def test_a_line_in_another_currency_is_refused() -> None:
    with pytest.raises(TaxRefusedError) as caught:
        quote(RULES, (), request("US", "NY", line("10.00", "EUR")))
    assert caught.value.code == "tax_currency_mismatch"


def test_certificate_ids_are_bounded() -> None:
    with pytest.raises(CertificateError, match="longer than 255"):
        ExemptionCertificate("c" * 256, "cus_1", "US-NY", date(2026, 1, 1))


def test_an_amount_finer_than_minor_units_is_refused() -> None:
    with pytest.raises(TaxRefusedError) as caught:
        quote(RULES, (), request("US", "NY", line("10.001")))
    assert caught.value.code == "tax_amount_invalid"
