from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from finsync.domain.errors import CurrencyMismatchError, DomainError, UnknownCurrencyError
from finsync.domain.money import Money


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
