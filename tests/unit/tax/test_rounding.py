"""Properties of the tax amounts: inclusive lines add up, document rounding splits exactly."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from finsync.domain.money import Money
from finsync.domain.tax import TaxTreatment
from finsync.systems.tax.rounding import exact_tax, round_document
from tests.unit.tax.support import RULES, line, quoted, request

CURRENCIES = st.sampled_from(["USD", "EUR", "JPY", "KWD"])
RATES = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("0.2700"), places=4)
MINORS = st.integers(min_value=-10**9, max_value=10**9)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=10**9), min_size=1, max_size=8),
       st.sampled_from([("GB", "GBP"), ("DE", "EUR"), ("FR", "EUR")]))
def test_inclusive_net_plus_tax_is_the_amount(minors: list[int], place: tuple[str, str]
                                              ) -> None:
    country, currency = place
    lines = [line(str(Money.from_minor(m, currency).amount), currency, line_id=f"l{i}",
                  inclusive=True) for i, m in enumerate(minors)]
    ask = request(country, None, *lines, entity="le_eu", currency=currency)
    result = quoted(ask)  # check_result: net + tax = amount, details sum to tax
    rate = RULES.rate(country, "saas", ask.on)
    half = Money.from_minor(1, currency).amount / 2
    for asked, taxed in zip(ask.lines, result.lines, strict=True):
        assert taxed.net + taxed.tax == asked.amount
        assert taxed.details[0].treatment is TaxTreatment.TAXABLE
        exact = exact_tax(asked.amount, rate, True)
        if country == "GB":  # line rounding: within half a minor unit of the exact tax
            assert abs(taxed.tax.amount - exact) <= half
    total_exact = sum((exact_tax(a.amount, rate, True) for a in ask.lines), Decimal(0))
    if country != "GB":  # document rounding: the whole document's tax rounded once
        assert abs(result.tax_total(currency).amount - total_exact) <= half


@settings(max_examples=300, deadline=None)
@given(st.lists(MINORS, min_size=1, max_size=12), RATES, CURRENCIES,
       st.lists(st.booleans(), min_size=12, max_size=12))
def test_document_rounding_sums_to_the_document_tax_rounded_once(
        minors: list[int], rate: Decimal, currency: str, inclusive: list[bool]) -> None:
    exacts = [exact_tax(Money.from_minor(m, currency), rate, inclusive[i])
              for i, m in enumerate(minors)]
    parts = round_document(exacts, currency)
    whole = Money(sum(exacts, Decimal(0)), currency).quantize(ROUND_HALF_EVEN)
    assert sum((p.amount for p in parts), Decimal(0)) == whole.amount
    unit = Money.from_minor(1, currency).amount
    for part, exact in zip(parts, exacts, strict=True):
        assert abs(part.amount - exact) < unit  # each within one minor unit of its tax
