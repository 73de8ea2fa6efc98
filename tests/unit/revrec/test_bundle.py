"""Bundles (606-10-32-37, 32-38) and the residual approach checked against the observed range
of selling prices (606-10-32-34(c)); the worked figures are in docs/revrec/cases.md."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from finsync.domain.money import Money
from finsync.systems.revrec import (
    AllocationInput,
    AllocationMethod,
    Bundle,
    SspRange,
    allocate,
    book_contract,
)
from finsync.systems.revrec.casefile import BUNDLE_FIELDS, TERMS_FIELDS, CaseFileError, load_case
from finsync.systems.revrec.errors import AllocationError, ResidualOutOfRangeError
from finsync.systems.revrec.serial import dumps_state, loads_state
from tests.unit.revrec.builders import usd
from tests.unit.revrec.casecheck import CASES

REFUSED = sorted((CASES / "refused").glob("*.json"))
SCHEMA = json.loads((Path(__file__).parents[3] / "docs/revrec/case.schema.json").read_text())
CASE_A = json.loads((CASES / "bundles_ex34_case_a.json").read_text())


def _abcd(d_range: tuple[str, str] | None = None) -> list[AllocationInput]:
    """Example 34: A 40, B 55, C 45 observable; D residual, sold for 15 to 45."""
    observed = None if d_range is None else SspRange("prod_d", usd(d_range[0]), usd(d_range[1]))
    return [AllocationInput("a", usd("40")), AllocationInput("b", usd("55")),
            AllocationInput("c", usd("45")), AllocationInput("d", usd("0"), True, observed)]


BC = (Bundle("bnd_bc", frozenset({"b", "c"}), usd("60.00")),)


@pytest.mark.parametrize("path", REFUSED, ids=[p.stem for p in REFUSED])
def test_refused_golden_case_names_where_and_why(path: Path) -> None:
    case = load_case(path.read_text())
    want = case.expect["refused"]
    assert isinstance(want, dict)
    with pytest.raises(CaseFileError) as caught:
        case.state()
    assert caught.value.path == want["path"]
    assert str(caught.value.__cause__.code) == want["code"]  # type: ignore[union-attr]
    assert str(caught.value.__cause__).startswith(want.get("message", ""))


def test_bundle_takes_the_whole_discount_when_it_is_the_contracts() -> None:
    # Example 34 Case A: A 40 + bundle 60 = 100 = the price.
    shares = allocate(usd("100.00"), _abcd()[:3], bundles=BC)
    assert [s.amount for s in shares] == [usd("40.00"), usd("33.00"), usd("27.00")]
    assert [s.method for s in shares] == [AllocationMethod.DISCOUNT_EXCLUDED,
                                          AllocationMethod.BUNDLE, AllocationMethod.BUNDLE]
    assert {s.paragraph for s in shares} == {"606-10-32-37"}


def test_discount_beyond_the_bundles_is_spread_over_every_obligation() -> None:
    # 90 = 100 less 10 more: weights A 40, bundle 60 -> A 36.00, bundle 54.00 (B 29.70, C 24.30)
    shares = allocate(usd("90.00"), _abcd()[:3], bundles=BC)
    assert [s.amount for s in shares] == [usd("36.00"), usd("29.70"), usd("24.30")]
    assert shares[0].method is AllocationMethod.RELATIVE_SSP


def test_residual_after_the_bundle_discount_within_its_range() -> None:
    # Example 34 Case B: D = 130 - 40 - 60 = 30, inside 15..45.
    shares = allocate(usd("130.00"), _abcd(("15.00", "45.00")), bundles=BC)
    assert [s.amount for s in shares] == [usd("40.00"), usd("33.00"), usd("27.00"),
                                          usd("30.00")]
    assert shares[3].method is AllocationMethod.RESIDUAL


@pytest.mark.parametrize(("price", "residual"), [("105.00", "5.00"), ("145.01", "45.01"),
                                                 ("95.00", "-5.00")])
def test_residual_outside_its_range_is_refused_naming_product_residual_range(
        price: str, residual: str) -> None:
    with pytest.raises(ResidualOutOfRangeError) as caught:
        allocate(usd(price), _abcd(("15.00", "45.00")), bundles=BC)
    error = caught.value
    assert (error.product_id, error.obligation_id) == ("prod_d", "d")
    assert (error.residual, error.low, error.high) == (usd(residual), usd("15"), usd("45"))
    assert error.code == "residual_out_of_range"
    assert f"leaves {residual} USD for prod_d" in str(error)
    assert "15.00 USD to 45.00 USD" in str(error) and "606-10-32-34(c)" in str(error)


@pytest.mark.parametrize("price", ["115.00", "145.00"])
def test_residual_on_the_edges_of_its_range_stands(price: str) -> None:
    shares = allocate(usd(price), _abcd(("15.00", "45.00")), bundles=BC)
    assert shares[3].amount == usd(price) - usd("100.00")


def test_each_of_several_residuals_is_checked_against_its_own_range() -> None:
    inputs = [AllocationInput("a", usd("40")),
              AllocationInput("x", usd("30"), True, SspRange("prod_x", usd("20"), usd("40"))),
              AllocationInput("y", usd("10"), True, SspRange("prod_y", usd("12"), usd("20")))]
    assert [s.amount for s in allocate(usd("92.00"), inputs)][1:] == [usd("39.00"),
                                                                      usd("13.00")]
    with pytest.raises(ResidualOutOfRangeError, match="prod_y"):
        allocate(usd("84.00"), inputs)  # y gets 44 x 10/40 = 11.00 < 12.00


def test_residual_without_a_range_is_not_checked() -> None:
    assert allocate(usd("105.00"), _abcd(), bundles=BC)[3].amount == usd("5.00")


@pytest.mark.parametrize(("bundles", "match"), [
    ((Bundle("bnd", frozenset({"b", "zz"}), usd("60")),), "'zz', which is not an obligation"),
    ((Bundle("bnd", frozenset({"b"}), usd("50")),), "two or more obligations"),
    ((Bundle("bnd", frozenset({"b", "c"}), usd("100")),), "carries no discount"),
    ((Bundle("bnd", frozenset({"b", "c"}), usd("60.001")),), "in minor units"),
    ((Bundle("bnd", frozenset({"b", "c"}), Money.of("60", "EUR")),), "must be USD"),
    ((Bundle("a", frozenset({"b", "c"}), usd("60")),), "already used"),
    ((*BC, Bundle("bnd_ab", frozenset({"a", "b"}), usd("80"))), "in bundles bnd_bc and bnd_ab"),
    ((Bundle("bnd", frozenset({"a", "b", "c"}), usd("100")),), "not all"),
])
def test_a_bundle_that_cannot_carry_the_discount_is_refused(bundles: tuple[Bundle, ...],
                                                            match: str) -> None:
    with pytest.raises(AllocationError, match=match):
        allocate(usd("100.00"), _abcd()[:3], bundles=bundles)


def test_a_bundle_of_a_residual_obligation_is_refused() -> None:
    with pytest.raises(AllocationError, match="residual approach"):
        allocate(usd("130.00"), _abcd(), bundles=(Bundle("bnd", frozenset({"c", "d"}),
                                                         usd("50")),))


def test_bundles_and_a_discount_subset_together_are_refused() -> None:
    with pytest.raises(AllocationError, match="not both"):
        allocate(usd("100.00"), _abcd()[:3], frozenset({"b", "c"}), BC)


def test_an_inverted_range_is_refused() -> None:
    with pytest.raises(AllocationError, match="low must not exceed high"):
        SspRange("prod_d", usd("45"), usd("15"))


@given(st.integers(0, 10**9), st.lists(st.integers(1, 10**7), min_size=3, max_size=7),
       st.integers(1, 10**7))
def test_bundled_allocation_sums_exactly_and_gives_singles_their_ssp_when_exact(
        extra: int, ssps: list[int], bundle_minor: int) -> None:
    inputs = [AllocationInput(f"po_{i}", Money.from_minor(s, "USD"))
              for i, s in enumerate(ssps)]
    members = sum(ssps[:2])
    price = Money.from_minor(min(bundle_minor, members - 1), "USD")
    bundle = Bundle("bnd", frozenset({"po_0", "po_1"}), price)
    exact = price + Money.from_minor(sum(ssps[2:]), "USD")
    shares = allocate(exact, inputs, bundles=(bundle,))
    assert [s.amount for s in shares[2:]] == [i.standalone_selling_price for i in inputs[2:]]
    assert shares[0].amount + shares[1].amount == price
    pool = Money.from_minor(extra, "USD")
    assert sum(s.amount.to_minor() for s in allocate(pool, inputs, bundles=(bundle,))) == extra


def test_case_file_bundle_naming_an_unknown_obligation_is_refused_with_its_path() -> None:
    doc = copy.deepcopy(CASE_A)
    doc["terms"]["bundles"][0]["obligations"] = ["ln_b", "ln_x"]
    with pytest.raises(CaseFileError, match=r"terms\.bundles\[0\]\.obligations\[1\]"):
        load_case(json.dumps(doc))


def test_case_file_bundle_with_an_unknown_field_is_refused() -> None:
    doc = copy.deepcopy(CASE_A)
    doc["terms"]["bundles"][0]["discount"] = "40.00"
    with pytest.raises(CaseFileError, match=r"terms\.bundles\[0\]\.discount: unknown field"):
        load_case(json.dumps(doc))


def test_schema_lists_the_terms_and_bundle_fields_the_loader_reads() -> None:
    assert set(SCHEMA["$defs"]["terms"]["properties"]) == set(TERMS_FIELDS)
    assert set(SCHEMA["$defs"]["bundle"]["properties"]) == set(BUNDLE_FIELDS)


def test_a_state_stored_before_bundles_still_reads_back() -> None:
    plain = load_case((CASES / "allocation_residual.json").read_text()).state()
    stored = json.loads(dumps_state(plain))
    assert "bundles" not in stored["terms"]  # unchanged bytes for a contract without bundles
    assert loads_state(json.dumps(stored)) == plain
    bundled = book_contract(load_case(json.dumps(CASE_A)).booked)
    assert loads_state(dumps_state(bundled)) == bundled


def test_case_file_bundle_naming_an_obligation_twice_is_refused_with_its_path() -> None:
    doc = copy.deepcopy(CASE_A)
    doc["terms"]["bundles"][0]["obligations"] = ["ln_b", "ln_c", "ln_b"]
    with pytest.raises(CaseFileError, match=r"terms\.bundles\[0\]\.obligations\[2\]: 'ln_b' "
                                            "is named twice"):
        load_case(json.dumps(doc))
