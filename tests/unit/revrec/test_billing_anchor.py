"""Billing anchors and proration conventions: the revenue engine's transaction price is what
embedded billing invoices under the contract, stubs included, under every convention.

Both pure cores run side by side (no database): billing's clock issues the invoices of the
whole term, the engine books the same contract and records those invoices."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from finsync.domain.catalog import (
    BillingFrequency,
    Price,
    PriceModel,
    Product,
    StandaloneSellingPrice,
)
from finsync.domain.clock import Period
from finsync.domain.contract import ContractLine, SubscriptionContract
from finsync.domain.errors import DomainError
from finsync.domain.invoice import Invoice
from finsync.domain.money import Money, total
from finsync.domain.party import CustomerAccount
from finsync.domain.proration import ProrationConvention, add_months, cycle_share
from finsync.systems.billing.catalog import Catalog
from finsync.systems.billing.clock import run
from finsync.systems.billing.pricing import PricePlan
from finsync.systems.billing.state import BillingConfig, BillingState
from finsync.systems.billing.subscription import (
    CreateSubscription,
    create_subscription,
    register_customer,
)
from finsync.systems.revrec import (
    ContractBooked,
    Granularity,
    InvoiceRecorded,
    RecognitionTerms,
    apply_event,
    book_contract,
)
from finsync.systems.revrec.balance import balances
from finsync.systems.revrec.schedule import recognised_to
from tests.taxkit import RateQuoter

BY_DAY, BY_SECOND, EVEN, PARTIAL = (ProrationConvention.BY_DAY, ProrationConvention.BY_SECOND,
                                    ProrationConvention.MONTHLY_EVEN,
                                    ProrationConvention.PARTIAL_MONTHS)
CUSTOMER = CustomerAccount("cus_1", "Acme Corp", "le_us", "USD", "US")
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _contract(start: date, anchor: date | None, frequency: BillingFrequency, months: int,
              convention: ProrationConvention, quantity: int,
              unit: Money) -> SubscriptionContract:
    end = add_months(start, months)
    seats = ContractLine("ln_seats", "prod_seat", "price_seat", quantity, unit, start, end)
    return SubscriptionContract("con_1", "cus_1", "le_us", unit.currency, start, end,
                                frequency, (seats,), billing_anchor=anchor,
                                proration=convention)


def _billed(contract: SubscriptionContract) -> tuple[Invoice, ...]:
    """Every invoice embedded billing issues over the term (no renewal, no tax)."""
    price = Price("price_seat", "prod_seat", PriceModel.PER_UNIT, contract.lines[0].unit_price,
                  contract.billing_frequency)
    catalog = Catalog((Product("prod_seat", "Seat"),), (PricePlan(price),))
    tax = RateQuoter({("US", "saas"): Decimal(0)})
    state = register_customer(BillingState(BillingConfig(catalog, tax)), CUSTOMER).state
    state = create_subscription(state, CreateSubscription(contract, auto_renew=False)).state
    state = run(state, contract.end_date).state
    return tuple(record.invoice for record in state.invoices)


def _booked(contract: SubscriptionContract,
            granularity: Granularity = Granularity.DAY) -> ContractBooked:
    ssp = StandaloneSellingPrice("prod_seat", contract.lines[0].unit_price, date(2000, 1, 1))
    return ContractBooked("evt_book", contract, (ssp,), RecognitionTerms(granularity=granularity))


@st.composite
def contracts(draw: st.DrawFn) -> SubscriptionContract:
    frequency = draw(st.sampled_from(BillingFrequency))
    start = draw(st.dates(date(2024, 1, 1), date(2027, 12, 31)))
    # Mostly an anchor inside the first period (a bill-cycle date); sometimes one before the
    # start (a renewed term keeps the anchor of its first).
    offset = draw(st.integers(-400, frequency.months * 31 - 1))
    anchor = min(start + timedelta(days=offset), add_months(start, frequency.months))
    months = draw(st.integers(1, 30))
    cents = draw(st.integers(1, 10**8))
    unit = Money(Decimal(cents).scaleb(-2), "USD")
    return _contract(start, anchor, frequency, months, draw(st.sampled_from(
        ProrationConvention)), draw(st.integers(0, 10_000)), unit)


@SETTINGS
@given(contracts())
@example(_contract(date(2026, 1, 15), date(2026, 2, 1), BillingFrequency.MONTHLY, 12, EVEN,
                   7, Money.of("99.99", "USD")))
@example(_contract(date(2026, 3, 15), date(2026, 4, 1), BillingFrequency.ANNUAL, 12, PARTIAL,
                   3, Money.of("1000.01", "USD")))
def test_transaction_price_is_what_billing_invoices_over_the_term(
        contract: SubscriptionContract) -> None:
    invoices = _billed(contract)
    billed = total([i.subtotal for i in invoices], contract.currency)
    state = book_contract(_booked(contract))
    assert state.transaction_price == billed
    for invoice in invoices:
        state = apply_event(state, InvoiceRecorded(f"evt_{invoice.id}", invoice))
    at_end = balances(state, contract.end_date)
    assert at_end.billed == billed
    assert (at_end.billed - at_end.recognised).is_zero


@SETTINGS
@given(contracts())
@example(_contract(date(2026, 5, 15), date(2026, 6, 1), BillingFrequency.MONTHLY, 12, EVEN,
                   50, Money.of("20.00", "USD")))
def test_revenue_as_invoiced_matches_each_invoice_to_the_cent(
        contract: SubscriptionContract) -> None:
    # Granularity `invoiced` (606-10-55-18): each invoice line's service period earns exactly
    # the line, rounding difference included, and nothing is left between them.
    state = book_contract(_booked(contract, Granularity.INVOICED))
    for invoice in _billed(contract):
        for line in invoice.lines:
            earned = (recognised_to(state, line.service_end)
                      - recognised_to(state, line.service_start))
            assert earned == line.amount, (line.service_start, line.service_end)


# -- the stub, by hand -------------------------------------------------------------------------

def test_mid_month_start_billed_on_the_first_gets_a_stub_first_invoice() -> None:
    # 15 Jan 2026, 10 seats at 31.00 a month, billed on the 1st: the first invoice is the
    # stub [15 Jan, 1 Feb) = 10 x 31.00 x 17/31 = 170.00 by day, then 310.00 a month; the
    # last, [1 Jan 2027, 15 Jan 2027), is 10 x 31.00 x 14/31 = 140.00.
    contract = _contract(date(2026, 1, 15), date(2026, 2, 1), BillingFrequency.MONTHLY, 12,
                         BY_DAY, 10, Money.of("31.00", "USD"))
    invoices = _billed(contract)
    assert [i.issue_date for i in invoices[:2]] == [date(2026, 1, 15), date(2026, 2, 1)]
    assert [str(i.subtotal.amount) for i in (invoices[0], invoices[1], invoices[-1])] == [
        "170.00", "310.00", "140.00"]
    assert len(invoices) == 13
    assert book_contract(_booked(contract)).transaction_price == Money.of("3720.00", "USD")


def test_billing_anchor_before_the_renewed_start_keeps_the_calendar() -> None:
    # A renewal starts later than its anchor: the periods are still laid from the anchor (the
    # 1st): 31.00 x 17/31 + 31.00 + 31.00 + 31.00 x 14/30 (April) = 17.00 + 62.00 + 14.47.
    contract = _contract(date(2027, 1, 15), date(2026, 2, 1), BillingFrequency.MONTHLY, 3,
                         BY_DAY, 1, Money.of("31.00", "USD"))
    assert book_contract(_booked(contract)).transaction_price == Money.of("93.47", "USD")


# -- the conventions' arithmetic ------------------------------------------------------------

JAN_2026 = Period(date(2026, 1, 1), date(2026, 2, 1))
YEAR_FROM_APRIL = Period(date(2025, 4, 1), date(2026, 4, 1))
STUB = Period(date(2026, 1, 15), date(2026, 2, 1))  # 17 days of a 31-day January


@pytest.mark.parametrize(("convention", "cycle", "span", "share"), [
    (BY_DAY, JAN_2026, STUB, Fraction(17, 31)),
    (BY_SECOND, JAN_2026, STUB, Fraction(17, 31)),
    (PARTIAL, JAN_2026, STUB, Fraction(17, 31)),
    (EVEN, JAN_2026, STUB, Fraction(17, 30)),
    # An annual cycle from 1 April; the stub [15 Jan, 1 Apr): 17 days of January, then
    # February and March whole.
    (BY_DAY, YEAR_FROM_APRIL, Period(date(2026, 1, 15), date(2026, 4, 1)), Fraction(76, 365)),
    (PARTIAL, YEAR_FROM_APRIL, Period(date(2026, 1, 15), date(2026, 4, 1)),
     (2 + Fraction(17, 31)) / 12),
    (EVEN, YEAR_FROM_APRIL, Period(date(2026, 1, 15), date(2026, 4, 1)),
     (2 + Fraction(17, 30)) / 12),
    # A whole month is a twelfth under both month conventions, 28 days or 31.
    (EVEN, YEAR_FROM_APRIL, Period(date(2026, 2, 1), date(2026, 3, 1)), Fraction(1, 12)),
    (PARTIAL, YEAR_FROM_APRIL, Period(date(2025, 5, 1), date(2025, 6, 1)), Fraction(1, 12)),
])
def test_cycle_share_by_convention(convention: ProrationConvention, cycle: Period,
                                   span: Period, share: Fraction) -> None:
    anchor = cycle.start
    assert cycle_share(convention, anchor, cycle, span) == share


def test_monthly_even_part_month_of_thirty_days_is_a_whole_month() -> None:
    # Actual/360: 30 of the 31 days of January are 30/30 of a month, never more than one.
    span = Period(date(2026, 1, 2), date(2026, 2, 1))
    assert cycle_share(EVEN, JAN_2026.start, JAN_2026, span) == 1


def test_month_convention_refuses_a_cycle_off_the_anchor_calendar() -> None:
    cycle = Period(date(2026, 1, 10), date(2026, 2, 10))
    with pytest.raises(DomainError, match="not whole months on the anchor"):
        cycle_share(EVEN, date(2026, 1, 1), cycle, cycle)
