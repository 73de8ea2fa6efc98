from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from finsync.domain.errors import CurrencyMismatchError, DomainError, UnknownCurrencyError
from finsync.domain.money import Money, total


def test_money_from_float_is_refused() -> None:
    with pytest.raises(DomainError, match="not float"):
        Money.of(1.1, "USD")  # type: ignore[arg-type]


def test_mixed_currencies_are_refused() -> None:
    with pytest.raises(CurrencyMismatchError):
        _ = Money.of("1.00", "USD") + Money.of("1.00", "EUR")


def test_unknown_currency_is_refused() -> None:
    with pytest.raises(UnknownCurrencyError):
        Money.of("1", "XXX")


@pytest.mark.parametrize(("currency", "minor", "text"),
                         [("USD", 12345, "123.45"), ("JPY", 12345, "12345"),
                          ("KWD", 12345, "12.345")])
def test_minor_units_follow_the_iso_exponent(currency: str, minor: int, text: str) -> None:
    money = Money.from_minor(minor, currency)
    assert money.amount == Decimal(text)
    assert money.to_minor() == minor


def test_to_minor_refuses_sub_minor_precision() -> None:
    with pytest.raises(DomainError, match="precision"):
        Money.of("1.005", "USD").to_minor()


def test_quantize_rounds_half_even_once() -> None:
    assert Money.of("2.345", "USD").quantize().amount == Decimal("2.34")
    assert Money.of("2.355", "USD").quantize().amount == Decimal("2.36")


def test_allocate_splits_by_largest_remainder() -> None:
    parts = Money.of("100.00", "USD").allocate([1, 1, 1])
    assert [p.amount for p in parts] == [Decimal("33.34"), Decimal("33.33"), Decimal("33.33")]


@given(st.integers(-10**12, 10**12), st.lists(st.integers(0, 10**6), min_size=1, max_size=12)
       .filter(lambda ws: sum(ws) > 0), st.sampled_from(["USD", "JPY", "KWD"]))
def test_allocate_parts_sum_exactly_to_the_whole(minor: int, weights: list[int],
                                                 currency: str) -> None:
    whole = Money.from_minor(minor, currency)
    parts = whole.allocate(weights)
    assert sum(p.to_minor() for p in parts) == minor
    assert all(p.currency == currency for p in parts)


def test_no_negative_zero_from_arithmetic() -> None:
    zero = Money.of("0.00", "USD")
    for result in (-zero, zero - zero, Money.of("-0.00", "USD"), Money.of("-1.00", "USD") * 0,
                   Money.of("-0.001", "USD").quantize(), Money.from_minor(0, "USD")):
        assert str(result) == "0.00 USD"
        assert not result.amount.is_signed()


def test_zero_and_total_keep_the_currency_and_its_minor_unit() -> None:
    assert str(Money.zero("USD")) == "0.00 USD"
    assert str(Money.zero("JPY")) == "0 JPY"
    assert str(Money.zero("KWD")) == "0.000 KWD"
    assert Money.zero("USD") == Money.zero("USD")
    with pytest.raises(UnknownCurrencyError):
        Money.zero("XXX")
    with pytest.raises(UnknownCurrencyError):
        Money.from_minor(1, "XXX")
    with pytest.raises(CurrencyMismatchError, match="cannot combine USD with EUR"):
        total([Money.of("1.00", "USD"), Money.of("1.00", "EUR")], "USD")


amounts = st.decimals(-10**6, 10**6, places=3, allow_nan=False, allow_infinity=False)


@given(st.lists(amounts, max_size=8), st.sampled_from(["USD", "JPY", "KWD"]))
def test_total_is_adding_one_by_one(values: list[Decimal], currency: str) -> None:
    """`total` adds Decimals once; the result, exponent and sign of zero included, is what
    adding the Money one by one from zero gives."""
    moneys = [Money(v, currency) for v in values]
    one_by_one = Money.zero(currency)
    for money in moneys:
        one_by_one = one_by_one + money
    summed = total(moneys, currency)
    assert str(summed) == str(one_by_one)
    assert summed == Money(sum(values, Money.zero(currency).amount), currency)
