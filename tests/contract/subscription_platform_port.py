"""The subscription-platform contract: what every platform the commercial layer orders from
must do with an order (`SubscriptionPlatformPort`).

A test module runs it by defining a `harness` fixture (see `PlatformHarness`); the embedded
billing runs it in test_subscription_platform_port.py on SQLite and PostgreSQL, and the
Stripe adapter can run the very same suite against localstripe.

The reference contract (DESIGN §4): Acme buys 500 seats at 120.00 a seat-year from
2026-01-01 for a year, billed annually in advance, with API overage in arrears; on
2026-05-15, mid-quarter, CPQ approves 800 seats plus premium analytics at 24,000.00 a year.
Prices are per unit per the price's frequency, as `domain.commercial.OrderLine` has them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date

import pytest

from finsync.connectors.ports import DeliveryContext, Receipt, SubscriptionPlatformPort
from finsync.domain.catalog import BillingFrequency
from finsync.domain.commercial import CommercialKind, OrderLine, ProrationTerms, SubscriptionOrder
from finsync.domain.errors import ExceptionClass, PermanentError
from finsync.domain.money import Money
from finsync.domain.party import CustomerAccount, PostalAddress

START, END, UPGRADE = date(2026, 1, 1), date(2027, 1, 1), date(2026, 5, 15)
JULY = date(2026, 7, 1)
CONTRACT, CUSTOMER = "con_acme", "cus_acme"
# The prices the harness's platform sells (its catalogue maps them where ids differ).
SEAT, ANALYTICS, USAGE = "price_seat_annual", "price_analytics_annual", "price_usage_overage"


@dataclass
class PlatformHarness:
    """A platform port on an empty platform, with reads of what it billed.

    `invoiced(order_id)`: the line amounts (before tax) of the invoices the order caused;
    `credited(contract_id, on)`: those of the credit memos issued for the contract on a day;
    `customer(id)`: the platform's customer as the port left it (None when unknown);
    `unsupported_proration`: the proration terms the platform cannot apply mid-term."""

    port: SubscriptionPlatformPort
    invoiced: Callable[[str], list[Money]]
    credited: Callable[[str, date], list[Money]]
    customer: Callable[[str], CustomerAccount | None]
    unsupported_proration: tuple[ProrationTerms, ...] = ()


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


def ctx(key: str) -> DeliveryContext:
    return DeliveryContext(key, f"evt-{key}", "quote_acme")


ACME = CustomerAccount(CUSTOMER, "Acme Analytics Inc.", "le_us", "USD", "US",
                       billing_region="NY", tax_id="US-12-3456789",
                       address=PostalAddress(("1 Main Street",), "New York", "10001"))


def seats(quantity: int = 500, price: str = "120.00") -> OrderLine:
    return OrderLine("ln_seats", "prod_platform_seat", SEAT, quantity, usd(price), START, END)


def usage() -> OrderLine:
    return OrderLine("ln_usage", "prod_usage_overage", USAGE, 0, usd("0.002"), START, END)


def analytics(on: date = UPGRADE) -> OrderLine:
    return OrderLine("ln_analytics", "prod_premium_analytics", ANALYTICS, 1,
                     usd("24000.00"), on, END)


def order(quote_id: str, kind: CommercialKind, *lines: OrderLine, version: int = 1,
          effective: date = START, start: date = START, end: date = END,
          proration: ProrationTerms = ProrationTerms.INVOICE_NOW) -> SubscriptionOrder:
    return SubscriptionOrder(quote_id, kind, CONTRACT, version, CUSTOMER, "le_us", "USD",
                             start, end, effective, BillingFrequency.ANNUAL,
                             lines or (seats(), usage()), proration, True, 1)


NEW = order("quote_new", CommercialKind.NEW)
UPGRADE_ORDER = order("quote_upgrade", CommercialKind.AMENDMENT, seats(800), usage(),
                      analytics(), version=2, effective=UPGRADE)


def subscribed(harness: PlatformHarness) -> Receipt:
    harness.port.upsert_customer(ACME, ctx("k-customer"))
    return harness.port.apply_order(NEW, ctx("k-new"))


def refused(harness: PlatformHarness, bad: SubscriptionOrder) -> PermanentError:
    with pytest.raises(PermanentError) as caught:
        harness.port.apply_order(bad, ctx(f"k-{bad.id}"))
    return caught.value


class SubscriptionPlatformContract:
    def test_new_order_makes_version_1_as_ordered_and_invoices_the_first_year(
            self, harness: PlatformHarness) -> None:
        receipt = subscribed(harness)
        assert (receipt.external_id, receipt.detail["version"]) == (CONTRACT, "1")
        found = harness.port.contract(CONTRACT)
        assert found is not None and found.version == 1
        assert [(x.line_id, x.quantity, x.unit_price) for x in found.lines] == [
            ("ln_seats", 500, usd("120.00")), ("ln_usage", 0, usd("0.002"))]
        # 500 seats x 120.00 a year, in advance; usage is billed in arrears
        assert harness.invoiced("quote_new") == [usd("60000.00")]

    def test_upgrade_mid_quarter_invoices_the_proration_of_the_change(
            self, harness: PlatformHarness) -> None:
        subscribed(harness)
        receipt = harness.port.apply_order(UPGRADE_ORDER, ctx("k-upgrade"))
        assert (receipt.external_id, receipt.detail["version"]) == (CONTRACT, "2")
        # [2026-05-15, 2027-01-01) is 231 of the year's 365 days:
        #   +300 seats: 300 x 120.00 x 231/365 = 8,316,000 / 365 = 22783.5616 -> 22783.56
        #   analytics:  1 x 24000.00 x 231/365 = 5,544,000 / 365 = 15189.0411 -> 15189.04
        assert harness.invoiced("quote_upgrade") == [usd("22783.56"), usd("15189.04")]
        found = harness.port.contract(CONTRACT)
        assert found is not None
        assert [(x.line_id, x.quantity, x.start_date) for x in found.lines] == [
            ("ln_seats", 800, START), ("ln_usage", 0, START), ("ln_analytics", 1, UPGRADE)]

    def test_downgrade_credits_the_unused_seats(self, harness: PlatformHarness) -> None:
        subscribed(harness)
        down = order("quote_down", CommercialKind.AMENDMENT, seats(400), usage(), version=2,
                     effective=JULY)
        assert harness.port.apply_order(down, ctx("k-down")).detail["version"] == "2"
        # [2026-07-01, 2027-01-01) is 184 days: 100 x 120.00 x 184/365 = 6049.3151 -> 6049.32
        assert harness.credited(CONTRACT, JULY) == [usd("6049.32")]
        found = harness.port.contract(CONTRACT)
        assert found is not None and found.lines[0].quantity == 400

    def test_price_change_invoices_the_difference_for_the_rest_of_the_term(
            self, harness: PlatformHarness) -> None:
        subscribed(harness)
        dearer = order("quote_price", CommercialKind.AMENDMENT, seats(500, "132.00"), usage(),
                       version=2, effective=JULY)
        harness.port.apply_order(dearer, ctx("k-price"))
        # 500 x (132.00 - 120.00) x 184/365 = 1,104,000 / 365 = 3024.6575 -> 3024.66
        assert harness.invoiced("quote_price") == [usd("3024.66")]
        found = harness.port.contract(CONTRACT)
        assert found is not None and found.lines[0].unit_price == usd("132.00")

    def test_renewal_makes_the_next_term(self, harness: PlatformHarness) -> None:
        subscribed(harness)
        renewal = order("quote_renewal", CommercialKind.RENEWAL,
                        replace(seats(), start_date=END, end_date=date(2028, 1, 1)),
                        replace(usage(), start_date=END, end_date=date(2028, 1, 1)),
                        version=2, start=END, end=date(2028, 1, 1), effective=END)
        receipt = harness.port.apply_order(renewal, ctx("k-renewal"))
        assert receipt.detail["version"] == "2"
        found = harness.port.contract(CONTRACT)
        assert found is not None
        assert (found.start_date, found.end_date) == (END, date(2028, 1, 1))

    def test_cancellation_at_term_end_keeps_the_term(self, harness: PlatformHarness) -> None:
        subscribed(harness)
        cancel = order("quote_cancel", CommercialKind.CANCELLATION, version=2, effective=JULY)
        assert harness.port.apply_order(cancel, ctx("k-cancel")).detail["version"] == "2"
        found = harness.port.contract(CONTRACT)
        assert found is not None and found.end_date == END
        assert harness.credited(CONTRACT, JULY) == []

    def test_immediate_cancellation_ends_the_term_and_credits_the_unused_time(
            self, harness: PlatformHarness) -> None:
        subscribed(harness)
        cancel = order("quote_cancel", CommercialKind.CANCELLATION,
                       replace(seats(), end_date=JULY), replace(usage(), end_date=JULY),
                       version=2, effective=JULY, end=JULY)
        assert harness.port.apply_order(cancel, ctx("k-cancel")).detail["version"] == "2"
        found = harness.port.contract(CONTRACT)
        assert found is not None and found.end_date == JULY
        # 500 x 120.00 x 184/365 = 11,040,000 / 365 = 30246.5753 -> 30246.58
        assert harness.credited(CONTRACT, JULY) == [usd("30246.58")]

    def test_cancellation_as_cpq_quotes_it_with_every_line_at_zero_is_immediate(
            self, harness: PlatformHarness) -> None:
        subscribed(harness)
        cancel = order("quote_cancel", CommercialKind.CANCELLATION, seats(0), usage(),
                       version=2, effective=JULY)
        receipt = harness.port.apply_order(cancel, ctx("k-cancel"))
        assert receipt.detail["version"] == "2"
        assert harness.port.apply_order(cancel, ctx("k-cancel-2")) == receipt
        found = harness.port.contract(CONTRACT)
        assert found is not None and found.end_date == JULY
        assert harness.credited(CONTRACT, JULY) == [usd("30246.58")]  # as worked above

    def test_the_same_order_twice_has_one_effect_and_one_receipt(
            self, harness: PlatformHarness) -> None:
        first_new = subscribed(harness)
        first = harness.port.apply_order(UPGRADE_ORDER, ctx("k-upgrade"))
        for key in ("k-upgrade", "k-upgrade-resent"):  # the same delivery, another one
            assert harness.port.apply_order(UPGRADE_ORDER, ctx(key)) == first
        assert harness.port.apply_order(NEW, ctx("k-new-resent")) == first_new
        assert harness.invoiced("quote_upgrade") == [usd("22783.56"), usd("15189.04")]
        assert harness.invoiced("quote_new") == [usd("60000.00")]
        found = harness.port.contract(CONTRACT)
        assert found is not None and found.version == 2

    def test_an_order_for_an_unknown_contract_is_master_data_mismatch(
            self, harness: PlatformHarness) -> None:
        harness.port.upsert_customer(ACME, ctx("k-customer"))
        error = refused(harness, UPGRADE_ORDER)
        assert error.exception_class is ExceptionClass.MASTER_DATA_MISMATCH
        assert error.code == "unknown_contract"
        assert harness.port.contract(CONTRACT) is None

    def test_a_proration_the_platform_lacks_is_master_data_mismatch_and_changes_nothing(
            self, harness: PlatformHarness) -> None:
        if not harness.unsupported_proration:
            pytest.skip("this platform applies every proration behaviour")
        subscribed(harness)
        for terms in harness.unsupported_proration:
            error = refused(harness, replace(UPGRADE_ORDER, proration=terms))
            assert error.exception_class is ExceptionClass.MASTER_DATA_MISMATCH
            assert error.code == "proration_terms"
            assert terms.value in str(error)
        found = harness.port.contract(CONTRACT)
        assert found is not None and found.version == 1
        assert harness.invoiced("quote_upgrade") == []

    def test_customer_upsert_creates_then_renames(self, harness: PlatformHarness) -> None:
        created = harness.port.upsert_customer(ACME, ctx("k-customer"))
        assert created.external_id == CUSTOMER
        renamed = replace(ACME, name="Acme Analytics Group Inc.", version=2,
                          tax_id="US-98-7654321",
                          address=PostalAddress(("2 Park Avenue",), "New York", "10016"))
        receipt = harness.port.upsert_customer(renamed, ctx("k-customer-2"))
        assert (receipt.external_id, receipt.detail["version"]) == (CUSTOMER, "2")
        found = harness.customer(CUSTOMER)
        assert found is not None
        assert (found.name, found.tax_id, found.address) == (
            renamed.name, renamed.tax_id, renamed.address)
        assert harness.port.upsert_customer(renamed, ctx("k-customer-2")) == receipt
