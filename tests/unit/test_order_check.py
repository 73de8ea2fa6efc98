"""Billing's contract against the order sent (the version check), and a renewal against
its baseline."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from finsync.domain import codec
from finsync.domain.catalog_map import parse, translate
from finsync.domain.commercial import CommercialKind, SubscriptionOrder
from finsync.domain.contract import ContractLine, SubscriptionContract
from finsync.domain.order_check import (
    LineDifference,
    RenewalBaseline,
    baseline_of,
    renewal_differences,
    version_differences,
)
from tests.q2ckit import TERM_END, analytics, contract, renewed, seats

CATALOG = parse((Path(__file__).parents[2] / "src/finsync/default_cpq_catalog.toml")
                .read_text())
NEXT_END = date(2028, 1, 1)


def billed_as(order: SubscriptionOrder, version: int = 1) -> SubscriptionContract:
    """Billing's contract exactly as the order says."""
    return SubscriptionContract(
        order.contract_id, order.customer_id, order.legal_entity, order.currency,
        order.start_date, order.end_date, order.billing_frequency,
        tuple(ContractLine(ln.line_id, ln.product_id, ln.price_id, ln.quantity,
                           ln.unit_price, ln.start_date, ln.end_date, ln.ramp)
              for ln in order.lines), version=version)


def test_billings_contract_as_ordered_agrees() -> None:
    order = translate(contract(1, seats(500), analytics()), CATALOG, 1)
    assert version_differences(order, billed_as(order, version=7), cancelled=False) == ()


def test_each_difference_names_its_line_and_field() -> None:
    order = translate(contract(2, seats(800), analytics()), CATALOG, 1)
    billed = billed_as(order)
    seat_line = replace(billed.lines[0], quantity=500)
    billed = replace(billed, lines=(seat_line,))  # 500 seats, and no analytics module
    found = version_differences(order, billed, cancelled=False)
    assert found == (LineDifference("L-seats", "quantity", "800", "500"),
                     LineDifference("L-analytics", "line", "present", "absent"))
    assert found[0].describe() == "line L-seats: quantity 800 != 500"


def test_a_contract_level_difference_is_named_on_the_contract() -> None:
    order = translate(contract(1, seats(500)), CATALOG, 1)
    billed = replace(billed_as(order), end_date=date(2026, 12, 1))
    assert [d.describe() for d in version_differences(order, billed, cancelled=False)] == [
        "contract: end_date 2027-01-01 != 2026-12-01"]


def test_a_cancellation_is_checked_for_being_one() -> None:
    cancel = contract(2, seats(0), kind=CommercialKind.CANCELLATION)
    order = translate(cancel, CATALOG, 1)
    assert version_differences(order, billed_as(order), cancelled=True) == ()
    assert version_differences(order, billed_as(order), cancelled=False) == (
        LineDifference("*", "kind", "cancellation", "not cancelled"),)


def test_renewal_at_baseline_plus_uplift_agrees() -> None:
    # 500 seats at 120.00 with a 7 % uplift renew at 120.00 x 1.07 = 128.40 a seat-year.
    first = contract(1, seats(500), uplift="7")
    base = baseline_of(first)
    renewal = renewed(first, 2, seats(500, "128.40", start=TERM_END, end=NEXT_END))
    assert renewal_differences(base, renewal) == ()


def test_renewal_rounded_half_up_agrees() -> None:
    # 99.99 x 1.035 = 103.48965, which CPQ rounds to 103.49.
    first = contract(1, seats(10, "99.99"), uplift="3.5")
    renewal = renewed(first, 2, seats(10, "103.49", start=TERM_END, end=NEXT_END))
    assert renewal_differences(baseline_of(first), renewal) == ()


def test_renewal_off_baseline_names_the_line() -> None:
    first = contract(1, seats(500), analytics(), uplift="7")
    # The seats renew at 125.00 (not 128.40) and 450 of them; the module does not renew.
    renewal = renewed(first, 2, seats(450, "125.00", start=TERM_END, end=NEXT_END))
    assert [d.describe() for d in renewal_differences(baseline_of(first), renewal)] == [
        "line L-seats: quantity 500 != 450",
        "line L-seats: net_unit_price 128.40 USD != 125.00 USD",
        "line L-analytics: line renews != absent"]


def test_a_line_ending_before_the_term_or_a_cancellation_does_not_renew() -> None:
    early = contract(1, seats(500), analytics(end=date(2026, 7, 1)))
    assert [b.line_id for b in baseline_of(early).lines] == ["L-seats"]
    cancelled = contract(2, seats(500), kind=CommercialKind.CANCELLATION)
    assert baseline_of(cancelled).lines == ()


@given(st.integers(0, 10_000), st.decimals(0, 100, places=2),
       st.sampled_from(["120.00", "0.01", "24000.00"]))
def test_baseline_round_trips(quantity: int, uplift: Decimal, price: str) -> None:
    base = baseline_of(contract(1, seats(quantity, price), uplift=str(uplift)))
    assert codec.decode(RenewalBaseline, codec.encode(base), "baseline") == base
