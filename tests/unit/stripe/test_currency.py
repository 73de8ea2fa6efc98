"""Stripe's currency exponents (connectors/stripe/currency.py): what an API amount means."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from finsync.connectors.stripe import currency
from finsync.domain.errors import MappingError
from finsync.domain.money import AMOUNT_CEILING, CURRENCY_EXPONENTS, Money


@pytest.mark.parametrize(("code", "units", "expected"), [
    ("USD", 125_000, "1250.00"),  # cents
    ("EUR", 125_000, "1250.00"),
    ("JPY", 1_250, "1250"),  # zero-decimal on the API and in ISO 4217
    ("UGX", 1_250, "1250"),  # zero-decimal on the API and in ISO 4217
    ("KWD", 1_250, "1.250"),  # three decimals on both
    ("BHD", 1_250, "1.250"),
    ("HUF", 125_000, "1250.00"),  # two decimals on the API and in ISO 4217; paid out whole
    ("TWD", 125_000, "1250.00"),
    ("ISK", 125_000, "1250"),  # Stripe's special case: two decimals on the API, none in ISO
])
def test_an_api_amount_is_read_in_stripes_exponent(code: str, units: int, expected: str) -> None:
    assert currency.money(units, code, "x.amount") == Money(Decimal(expected), code)


def test_stripes_documented_lists_agree_with_iso_4217_where_finsync_books_them() -> None:
    for code in currency.ZERO_DECIMAL & CURRENCY_EXPONENTS.keys():
        assert CURRENCY_EXPONENTS[code] == 0 and currency.exponent(code) == 0, code
    for code in currency.THREE_DECIMAL & CURRENCY_EXPONENTS.keys():
        assert CURRENCY_EXPONENTS[code] == 3 and currency.exponent(code) == 3, code
    assert {c for c in CURRENCY_EXPONENTS if currency.exponent(c) != CURRENCY_EXPONENTS[c]} \
        == set(currency.SPECIAL_EXPONENTS) == {"ISK"}


def test_a_price_keeps_its_precision_in_stripes_exponent() -> None:
    # unit_amount_decimal "1250.5" ISK units is 12.505 ISK a unit: finer than a króna is fine
    # for a price; documents round it once where they bill it.
    assert currency.price(Decimal("1250.5"), "ISK") == Money(Decimal("12.505"), "ISK")


def test_an_unknown_currency_is_named() -> None:
    with pytest.raises(MappingError) as caught:
        currency.code_of("xyz", "invoice")
    assert caught.value.code == "unknown_currency"
    assert currency.code_of("isk", "invoice") == "ISK"


def test_an_amount_at_the_ceiling_is_out_of_range() -> None:
    units = int(AMOUNT_CEILING) * 100
    with pytest.raises(MappingError) as caught:
        currency.money(units, "USD", "invoice.total")
    assert caught.value.code == "amount_out_of_range"


@pytest.mark.parametrize("units", [10 ** 40, -(10 ** 60)])
def test_an_amount_beyond_decimal_precision_is_out_of_range_not_an_error(units: int) -> None:
    # 10^40 minor units has more digits than Decimal's context holds: quantizing it would
    # raise InvalidOperation (a fuzz case); the ceiling is checked first.
    with pytest.raises(MappingError) as caught:
        currency.money(units, "USD", "invoice.total")
    assert caught.value.code == "amount_out_of_range"


@given(st.sampled_from(sorted(CURRENCY_EXPONENTS)),
       st.integers(-(10 ** 17), 10 ** 17))
def test_an_amount_is_booked_exactly_or_refused(code: str, units: int) -> None:
    # In minor units of the books, an API amount is units / 10^(Stripe's - ISO's exponent):
    # exactly, or refused as finer than the books hold. Never rounded.
    shift = 10 ** (currency.exponent(code) - CURRENCY_EXPONENTS[code])
    try:
        booked = currency.money(units, code, "x.amount")
    except MappingError as exc:
        assert exc.code in {"amount_precision", "amount_out_of_range"}
        assert units % shift != 0 or abs(units) >= int(AMOUNT_CEILING) * 10 ** (
            currency.exponent(code))
        return
    assert booked.to_minor() * shift == units
