"""Billing's contract against the order sent (the version check), and a renewal against
its baseline."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from finsync.connectors.embedded.billing import canonical_prices
from finsync.domain import codec
from finsync.domain.catalog import BillingFrequency
from finsync.domain.catalog_map import parse, translate
from finsync.domain.commercial import CommercialKind, SubscriptionOrder
from finsync.domain.contract import ContractLine, RampStep, SubscriptionContract
from finsync.domain.events import ContractCreated
from finsync.domain.money import Money
from finsync.domain.order_check import (
    LineDifference,
    RenewalBaseline,
    baseline_of,
    per_period,
    renewal_differences,
    version_differences,
)
from tests.q2ckit import TERM_END, analytics, contract, line, renewed, seats
from tests.unit.billing.servicekit import CONFIG

CATALOG = parse((Path(__file__).parents[2] / "src/finsync/default_cpq_catalog.toml")
                .read_text())
NEXT_END = date(2028, 1, 1)
JULY = date(2026, 7, 1)


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


def billed_cancelled_on(order: SubscriptionOrder, day: date) -> SubscriptionContract:
    """Billing's contract after an immediate cancellation on `day` (systems/billing/
    cancellation.py): the term and every line end then."""
    billed = billed_as(order)
    return replace(billed, end_date=day, lines=tuple(
        replace(ln, end_date=min(ln.end_date, day)) for ln in billed.lines))


def test_a_cancellation_is_checked_for_being_one() -> None:
    # quoted as CPQ does, every line at zero, effective 1 July: billing ends it then
    cancel = contract(2, seats(0), kind=CommercialKind.CANCELLATION, effective=JULY)
    order = translate(cancel, CATALOG, 1)
    billed = billed_cancelled_on(order, JULY)
    assert version_differences(order, billed, cancelled=True) == ()
    assert version_differences(order, billed, cancelled=False) == (
        LineDifference("*", "kind", "cancellation", "not cancelled"),)


def test_an_immediate_cancellation_ended_on_another_day_names_the_days() -> None:
    # CPQ cancels on 1 July; billing (or a platform) ended the contract on 1 August
    order = translate(contract(2, seats(0), kind=CommercialKind.CANCELLATION,
                               effective=JULY), CATALOG, 1)
    late = billed_cancelled_on(order, date(2026, 8, 1))
    assert [d.describe() for d in version_differences(order, late, cancelled=True)] == [
        "contract: end_date 2026-07-01 != 2026-08-01",
        "line L-seats: end_date 2026-07-01 != 2026-08-01"]
    # ... or kept the whole term: the cancellation was taken as one at term end
    kept = billed_as(order)
    assert [d.describe() for d in version_differences(order, kept, cancelled=True)] == [
        "contract: end_date 2026-07-01 != 2027-01-01",
        "line L-seats: end_date 2026-07-01 != 2027-01-01"]


def test_a_cancellation_at_term_end_keeps_the_term_and_its_lines() -> None:
    # the lines still run to the term's end: billing keeps the term, and ends nothing now
    order = translate(contract(2, seats(500), kind=CommercialKind.CANCELLATION,
                               effective=JULY), CATALOG, 1)
    assert version_differences(order, billed_as(order), cancelled=True) == ()
    ended_now = billed_cancelled_on(order, JULY)
    assert [d.describe() for d in version_differences(order, ended_now, cancelled=True)] == [
        "contract: end_date 2027-01-01 != 2026-07-01"]


def test_a_cancellation_that_ends_its_lines_on_the_effective_date_is_immediate() -> None:
    # the order ends the term and each line on 1 July (the contract suite's immediate one)
    cancel = contract(2, seats(500, end=JULY), kind=CommercialKind.CANCELLATION,
                      effective=JULY, end=JULY)
    order = translate(cancel, CATALOG, 1)
    assert version_differences(order, billed_as(order), cancelled=True) == ()


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


def quarterly(order: SubscriptionOrder) -> SubscriptionOrder:
    """The order billed quarterly, its seat and analytics prices annual (12 months)."""
    return replace(order, billing_frequency=BillingFrequency.QUARTERLY,
                   lines=tuple(replace(ln, price_months=12) for ln in order.lines))


def as_billing_states_it(order: SubscriptionOrder) -> SubscriptionContract:
    """Billing's contract event for the order: each price per billing period, restated by
    billing's own connector (connectors/embedded/billing.canonical_prices)."""
    event = canonical_prices(ContractCreated(billed_as(order)), CONFIG.catalog)
    assert isinstance(event, ContractCreated)
    return event.contract


def test_an_annual_price_billed_quarterly_is_compared_per_quarter() -> None:
    # 120.00 a seat-year is 120.00 x 3 / 12 = 30.00 a quarter in billing's event; the
    # module's 24,000.00 a year is 6,000.00 a quarter.
    order = quarterly(translate(contract(1, seats(500), analytics()), CATALOG, 1))
    billed = as_billing_states_it(order)
    assert [str(ln.unit_price) for ln in billed.lines] == ["30.00 USD", "6000.00 USD"]
    assert version_differences(order, billed, cancelled=False) == ()
    # A real difference is named in billing's terms: 29.00 a quarter, 30.00 ordered.
    cheaper = replace(billed, lines=(replace(billed.lines[0], unit_price=Money.of(
        "29.00", "USD")), billed.lines[1]))
    assert [d.describe() for d in version_differences(order, cheaper, cancelled=False)] == [
        "line L-seats: unit_price 30.00 USD != 29.00 USD"]


def test_a_price_that_does_not_divide_evenly_carries_28_digits_as_billing_does() -> None:
    # 100.00 a year billed monthly: 100.00 x 1 / 12 = 8.333333333333333333333333333
    order = translate(contract(1, seats(10, "100.00")), CATALOG, 1)
    order = replace(order, billing_frequency=BillingFrequency.MONTHLY,
                    lines=tuple(replace(ln, price_months=12) for ln in order.lines))
    billed = as_billing_states_it(order)
    assert str(billed.lines[0].unit_price.amount) == "8.333333333333333333333333333"
    assert version_differences(order, billed, cancelled=False) == ()


def test_a_usage_price_or_a_price_of_unknown_period_is_not_restated() -> None:
    # 0.002 an API call is per unit whatever the cycle; a line without price_months is
    # compared as it stands (a platform whose events keep the price's own period).
    order = translate(contract(1, line("L-usage", "USAGE-OVERAGE", 0, "0.002")), CATALOG, 1)
    order = replace(order, billing_frequency=BillingFrequency.QUARTERLY)
    assert order.lines[0].price_months is None
    assert per_period(order.lines[0], 3) == order.lines[0]
    assert version_differences(order, as_billing_states_it(order), cancelled=False) == ()


def test_a_ramp_is_restated_step_by_step() -> None:
    step = RampStep(date(2026, 7, 1), 600, Money.of("132.00", "USD"))
    order = quarterly(translate(contract(1, seats(500)), CATALOG, 1))
    ramped = replace(order, lines=(replace(order.lines[0], ramp=(step,)),))
    assert [str(s.unit_price) for s in per_period(ramped.lines[0], 3).ramp] == ["33.00 USD"]
    assert version_differences(ramped, as_billing_states_it(ramped), cancelled=False) == ()
