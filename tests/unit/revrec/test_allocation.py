from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from finsync.domain.money import Money
from finsync.systems.revrec import AllocationInput, AllocationMethod, allocate
from finsync.systems.revrec.errors import AllocationError
from tests.unit.revrec.builders import usd


def _inputs(*ssps: str, residual: int | None = None) -> list[AllocationInput]:
    return [AllocationInput(f"po_{i}", usd(s), i == residual) for i, s in enumerate(ssps)]


def test_relative_ssp_gives_the_odd_cent_to_the_largest_remainder() -> None:
    shares = allocate(usd("100.00"), _inputs("50", "25", "75"))
    assert [s.amount for s in shares] == [usd("33.33"), usd("16.67"), usd("50.00")]
    assert {s.paragraph for s in shares} == {"606-10-32-31"}


def test_discount_subset_without_a_discount_is_refused() -> None:
    with pytest.raises(AllocationError, match="no discount"):
        allocate(usd("140.00"), _inputs("40", "55", "45"), frozenset({"po_1", "po_2"}))


def test_discount_subset_naming_every_obligation_is_refused() -> None:
    with pytest.raises(AllocationError, match="proper subset"):
        allocate(usd("100.00"), _inputs("40", "60"), frozenset({"po_0", "po_1"}))


def test_residual_leaving_nothing_is_refused() -> None:
    with pytest.raises(AllocationError, match="residual approach leaves"):
        allocate(usd("95.00"), _inputs("40", "55", "0", residual=2))


def test_residual_with_a_discount_subset_is_refused() -> None:
    with pytest.raises(AllocationError, match="606-10-32-38"):
        allocate(usd("95.00"), _inputs("40", "55", "0", residual=2), frozenset({"po_0"}))


def test_residual_without_estimates_shares_equally() -> None:
    inputs = [*_inputs("40"), AllocationInput("po_x", usd("0"), True),
              AllocationInput("po_y", usd("0"), True)]
    shares = allocate(usd("100.01"), inputs)
    assert [s.amount for s in shares] == [usd("40.00"), usd("30.01"), usd("30.00")]
    assert shares[1].method is AllocationMethod.RESIDUAL


def test_allocation_without_obligations_is_refused_unless_zero() -> None:
    assert allocate(usd("0"), []) == ()
    with pytest.raises(AllocationError):
        allocate(usd("1.00"), [])


@given(st.integers(0, 10**9), st.lists(st.integers(0, 10**7), min_size=1, max_size=8)
       .filter(lambda ws: sum(ws) > 0))
def test_allocation_shares_sum_exactly_to_the_price(minor: int, ssps: list[int]) -> None:
    inputs = [AllocationInput(f"po_{i}", Money.from_minor(s, "USD")) for i, s in enumerate(ssps)]
    shares = allocate(Money.from_minor(minor, "USD"), inputs)
    assert sum(s.amount.to_minor() for s in shares) == minor
