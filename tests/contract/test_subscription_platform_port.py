"""The subscription-platform contract, run against embedded billing on SQLite and
PostgreSQL, and what embedded billing does beyond it: the order's command is billing's own
amendment (the same invoice), idempotency after a crash between billing's commit and the
hub's record, a renewal billing's clock made first, the terms billing cannot express."""

from __future__ import annotations

import json
import tomllib
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine

from finsync.bootstrap import DEFAULT_CATALOG_MAP, build_ports
from finsync.config import DEFAULT_CONFIG, parse_config
from finsync.connectors.embedded.billing import billing_service
from finsync.connectors.embedded.order_plan import order_line
from finsync.connectors.embedded.subscription_platform import EmbeddedSubscriptionPlatform
from finsync.connectors.ports import SubscriptionPlatformPort
from finsync.domain import catalog_map
from finsync.domain.commercial import CommercialKind, OrderLine, ProrationTerms
from finsync.domain.contract import RampStep, SubscriptionContract
from finsync.domain.errors import ExceptionClass, PermanentError, TransientError
from finsync.domain.money import Money
from finsync.domain.party import CustomerAccount
from finsync.storage.db import make_engine
from finsync.systems.billing.amendment import AmendSubscription
from finsync.systems.billing.edit import AddProduct, AddSeats
from finsync.systems.billing.errors import BillingStorageError, UnknownCustomerError
from finsync.systems.billing.handler import Command, RunClock
from finsync.systems.billing.migrate import upgrade
from finsync.systems.billing.service import Applied, BillingService
from finsync.systems.billing.state import BillingConfig, DowngradePolicy
from finsync.systems.billing.subscription import CreateSubscription
from tests import q2ckit
from tests.contract.subscription_platform_port import (
    ACME,
    CONTRACT,
    CUSTOMER,
    END,
    JULY,
    NEW,
    START,
    UPGRADE,
    UPGRADE_ORDER,
    PlatformHarness,
    SubscriptionPlatformContract,
    analytics,
    ctx,
    order,
    refused,
    seats,
    subscribed,
    usage,
    usd,
)
from tests.unit.billing.servicekit import CONFIG, Clock


def _service(engine: Engine, config: BillingConfig = CONFIG) -> BillingService:
    upgrade(engine)
    return billing_service(engine, config, Clock())


def _harness(service: BillingService) -> PlatformHarness:
    def invoiced(order_id: str) -> list[Money]:
        return [line.amount for summary in service.invoices()
                if summary.correlation_id == order_id
                for line in service.invoice_record(summary.id).invoice.lines]

    def credited(contract_id: str, on: date) -> list[Money]:
        state = service.state()
        of_contract = {r.invoice.id for r in state.invoices
                       if r.invoice.contract_id == contract_id}
        return [line.amount for memo in state.credit_memos
                if memo.invoice_id in of_contract and memo.issue_date == on
                for line in memo.lines]

    def customer(customer_id: str) -> CustomerAccount | None:
        try:
            return service.customer(customer_id)
        except UnknownCustomerError:
            return None

    port: SubscriptionPlatformPort = EmbeddedSubscriptionPlatform("billing", service)
    assert isinstance(port, SubscriptionPlatformPort)
    return PlatformHarness(port, invoiced, credited, customer,
                           (ProrationTerms.NEXT_INVOICE, ProrationTerms.NONE))


@pytest.fixture
def service(engine: Engine) -> BillingService:
    return _service(engine)


@pytest.fixture
def harness(service: BillingService) -> PlatformHarness:
    return _harness(service)


class TestEmbeddedSubscriptionPlatform(SubscriptionPlatformContract):
    pass


def test_the_upgrade_order_invoices_what_billing_s_own_amendment_invoices(
        service: BillingService, harness: PlatformHarness) -> None:
    subscribed(harness)
    harness.port.apply_order(UPGRADE_ORDER, ctx("k-upgrade"))
    # The same contract under another id, upgraded by billing's command directly.
    direct = SubscriptionContract("con_direct", CUSTOMER, "le_us", "USD", START, END,
                                  NEW.billing_frequency,
                                  tuple(order_line(x) for x in NEW.lines))
    service.execute(CreateSubscription(direct, "quote_direct"))
    service.execute(AmendSubscription("amd_direct", "con_direct", UPGRADE, (
        AddSeats("ln_seats", 300), AddProduct("ln_analytics", "price_analytics_annual", 1))))
    # 22783.56 + 15189.04 = 37972.60 both ways (worked in the contract suite)
    assert harness.invoiced("amd_direct") == harness.invoiced("quote_upgrade") == [
        usd("22783.56"), usd("15189.04")]


class _Crashing:
    """Billing's service whose next command commits, then the connection is lost."""

    def __init__(self, inner: BillingService) -> None:
        self.inner, self.armed = inner, True
        self.config, self.engine = inner.config, inner.engine

    def execute(self, command: Command) -> Applied:
        applied = self.inner.execute(command)
        if self.armed:
            self.armed = False
            raise BillingStorageError("connection lost after the commit")
        return applied

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def test_an_order_committed_before_a_crash_is_found_in_billing_and_not_applied_again(
        service: BillingService, harness: PlatformHarness) -> None:
    subscribed(harness)
    crashing = EmbeddedSubscriptionPlatform("billing", _Crashing(service))  # type: ignore[arg-type]
    with pytest.raises(TransientError):
        crashing.apply_order(UPGRADE_ORDER, ctx("k-upgrade"))
    again = crashing.apply_order(UPGRADE_ORDER, ctx("k-upgrade"))  # the hub retries
    assert (again.external_id, again.detail["version"]) == (CONTRACT, "2")
    assert harness.invoiced("quote_upgrade") == [usd("22783.56"), usd("15189.04")]


def test_a_renewal_is_correlated_to_its_quote(service: BillingService,
                                              harness: PlatformHarness) -> None:
    subscribed(harness)
    next_end = date(2028, 1, 1)
    renewal = order("quote_renewal", CommercialKind.RENEWAL,
                    replace(seats(), start_date=END, end_date=next_end),
                    replace(usage(), start_date=END, end_date=next_end),
                    version=2, start=END, end=next_end, effective=END)
    harness.port.apply_order(renewal, ctx("k-renewal"))
    renewed = [json.loads(item.envelope) for item in service.pending()
               if item.type == "contract.renewed"]
    assert [e["correlation_id"] for e in renewed] == ["quote_renewal"]


def test_a_renewal_billing_s_clock_made_first_is_the_order_s(
        service: BillingService, harness: PlatformHarness) -> None:
    subscribed(harness)
    service.execute(RunClock(END))  # auto-renewed on 2027-01-01, before CPQ's renewal came
    next_end = date(2028, 1, 1)
    renewal = order("quote_renewal", CommercialKind.RENEWAL,
                    replace(seats(), start_date=END, end_date=next_end),
                    replace(usage(), start_date=END, end_date=next_end),
                    version=2, start=END, end=next_end, effective=END)
    assert harness.port.apply_order(renewal, ctx("k-renewal")).detail["version"] == "2"
    found = harness.port.contract(CONTRACT)
    assert found is not None and (found.version, found.end_date) == (2, next_end)


def test_a_renewal_priced_with_an_uplift_renews_at_that_price(
        harness: PlatformHarness) -> None:
    subscribed(harness)
    next_end = date(2028, 1, 1)
    # 120.00 a seat-year with a 5 % uplift: 126.00 for 2027
    uplifted = order("quote_renewal", CommercialKind.RENEWAL,
                     replace(seats(price="126.00"), start_date=END, end_date=next_end),
                     replace(usage(), start_date=END, end_date=next_end),
                     version=2, start=END, end=next_end, effective=END)
    assert harness.port.apply_order(uplifted, ctx("k-renewal")).detail["version"] == "2"
    found = harness.port.contract(CONTRACT)
    assert found is not None and found.lines[0].unit_price == usd("126.00")
    assert harness.port.apply_order(uplifted, ctx("k-renewal-2")).detail["version"] == "2"


def test_a_renewal_that_changes_lines_is_refused(harness: PlatformHarness) -> None:
    subscribed(harness)
    next_end = date(2028, 1, 1)
    more = order("quote_renewal", CommercialKind.RENEWAL,
                 replace(seats(600), start_date=END, end_date=next_end),
                 replace(usage(), start_date=END, end_date=next_end),
                 version=2, start=END, end=next_end, effective=END)
    error = refused(harness, more)
    assert (error.code, error.exception_class) == ("renewal_terms",
                                                   ExceptionClass.MASTER_DATA_MISMATCH)
    assert "ln_seats" in str(error)


@pytest.mark.parametrize(("line", "code"), [
    (replace(seats(), ramp=(RampStep(JULY, 600, usd("120.00")),)), "ramp_change"),
    (replace(analytics(), start_date=JULY), "line_dates"),
    (replace(seats(), price_id="price_seat_annual_eur"), "line_price"),
])
def test_a_change_billing_cannot_express_is_named(harness: PlatformHarness,
                                                  line: OrderLine, code: str) -> None:
    subscribed(harness)
    lines = {"ln_seats": seats(), "ln_usage": usage()}
    lines[line.line_id] = line
    bad = order("quote_bad", CommercialKind.AMENDMENT, *lines.values(), version=2,
                effective=UPGRADE)
    error = refused(harness, bad)
    assert (error.code, error.exception_class) == (code, ExceptionClass.MASTER_DATA_MISMATCH)
    found = harness.port.contract(CONTRACT)
    assert found is not None and found.version == 1


def test_a_price_change_on_a_ramped_line_is_refused(harness: PlatformHarness) -> None:
    harness.port.upsert_customer(ACME, ctx("k-customer"))
    ramped = replace(seats(), ramp=(RampStep(JULY, 600, usd("110.00")),))
    harness.port.apply_order(replace(NEW, lines=(ramped,)), ctx("k-new"))
    dearer = replace(ramped, unit_price=usd("125.00"))
    error = refused(harness, order("quote_bad", CommercialKind.AMENDMENT, dearer, version=2,
                                   effective=UPGRADE))
    assert error.code == "ramped_price_change"
    more = replace(ramped, quantity=550, ramp=(RampStep(JULY, 650, usd("110.00")),))
    moved = order("quote_more", CommercialKind.AMENDMENT, more, version=2, effective=UPGRADE)
    assert harness.port.apply_order(moved, ctx("k-more")).detail["version"] == "2"


def test_a_downgrade_where_billing_defers_downgrades_is_refused(engine: Engine) -> None:
    harness = _harness(_service(engine, replace(CONFIG,
                                                downgrade_policy=DowngradePolicy.AT_RENEWAL)))
    subscribed(harness)
    down = order("quote_down", CommercialKind.AMENDMENT, seats(400), usage(), version=2,
                 effective=JULY)
    assert refused(harness, down).code == "downgrade_at_renewal"


def test_a_new_order_for_a_contract_billing_has_otherwise_is_refused(
        harness: PlatformHarness) -> None:
    subscribed(harness)
    error = refused(harness, replace(NEW, id="quote_other", lines=(seats(600),)))
    assert (error.code, error.exception_class) == ("contract_exists",
                                                   ExceptionClass.MASTER_DATA_MISMATCH)


def test_billing_s_own_refusal_carries_its_rule(harness: PlatformHarness) -> None:
    subscribed(harness)
    early = replace(UPGRADE_ORDER, effective_date=date(2025, 12, 1),
                    lines=(seats(800), usage()))
    error = refused(harness, early)  # before the contract starts: billing's date rule
    assert (error.code, error.exception_class) == ("amendment_date",
                                                   ExceptionClass.MAPPING_ERROR)
    unknown = replace(UPGRADE_ORDER, lines=(seats(), usage(), replace(
        analytics(), price_id="price_nowhere")))
    error = refused(harness, unknown)
    assert (error.code, error.exception_class) == ("unknown_price",
                                                   ExceptionClass.MASTER_DATA_MISMATCH)


def test_customer_keeps_billing_s_currency_and_an_older_master_version_changes_nothing(
        harness: PlatformHarness) -> None:
    harness.port.upsert_customer(replace(ACME, version=3), ctx("k-3"))
    harness.port.upsert_customer(replace(ACME, name="Old name", version=2), ctx("k-2"))
    moved = replace(ACME, currency="EUR", legal_entity="le_eu", name="Acme SE", version=4)
    harness.port.upsert_customer(moved, ctx("k-4"))
    found = harness.customer(CUSTOMER)
    assert found is not None
    assert (found.name, found.currency, found.legal_entity, found.version) == (
        "Acme SE", "USD", "le_us", 4)


def test_customer_tax_master_data_is_checked_by_billing(harness: PlatformHarness) -> None:
    with pytest.raises(PermanentError) as caught:
        harness.port.upsert_customer(replace(ACME, tax_id=" US-1 "), ctx("k-bad"))
    assert caught.value.code == "invalid_command"
    assert harness.customer(CUSTOMER) is None


def test_billing_s_database_down_is_transient() -> None:
    engine = make_engine("sqlite:////nonexistent-finsync-dir/billing.db")
    port = EmbeddedSubscriptionPlatform("billing", billing_service(engine, CONFIG, Clock()))
    with pytest.raises(TransientError):
        port.apply_order(UPGRADE_ORDER, ctx("k-upgrade"))
    with pytest.raises(TransientError):
        port.upsert_customer(ACME, ctx("k-customer"))
    with pytest.raises(TransientError):
        port.contract(CONTRACT)


class _Racing(_Crashing):
    """Billing's service where a concurrent apply of the same order commits first."""

    def execute(self, command: Command) -> Applied:
        self.inner.execute(command)  # the other worker's apply, committed
        return self.inner.execute(command)  # this one: refused as a duplicate id


def test_a_concurrent_apply_that_committed_first_is_read_back(
        service: BillingService, harness: PlatformHarness) -> None:
    subscribed(harness)
    racing = EmbeddedSubscriptionPlatform("billing", _Racing(service))  # type: ignore[arg-type]
    receipt = racing.apply_order(UPGRADE_ORDER, ctx("k-upgrade"))
    assert receipt.detail["version"] == "2"
    assert harness.invoiced("quote_upgrade") == [usd("22783.56"), usd("15189.04")]


def test_a_version_under_the_quote_id_that_differs_from_the_order_is_never_a_receipt(
        service: BillingService, harness: PlatformHarness) -> None:
    subscribed(harness)
    service.execute(AmendSubscription("quote_upgrade", CONTRACT, UPGRADE,
                                      (AddSeats("ln_seats", 100),)))
    error = refused(harness, UPGRADE_ORDER)
    assert (error.code, error.exception_class) == ("contract_differs_from_order",
                                                   ExceptionClass.MASTER_DATA_MISMATCH)
    assert "line ln_seats: billing price_seat_annual x600" in str(error)
    assert "line ln_analytics: billing none" in str(error)


def test_an_order_billing_already_is_answers_the_version_in_force(
        harness: PlatformHarness) -> None:
    subscribed(harness)
    same = order("quote_same", CommercialKind.AMENDMENT, version=2, effective=JULY)
    assert harness.port.apply_order(same, ctx("k-same")).detail["version"] == "1"
    found = harness.port.contract(CONTRACT)
    assert found is not None and found.version == 1


def test_an_order_before_its_customer_is_retried_as_a_sequencing_error(
        harness: PlatformHarness) -> None:
    with pytest.raises(TransientError) as caught:
        harness.port.apply_order(NEW, ctx("k-new"))
    assert caught.value.exception_class is ExceptionClass.SEQUENCING_ERROR
    assert harness.port.contract(CONTRACT) is None
    assert subscribed(harness).detail["version"] == "1"  # the customer came: it applies


def test_the_configured_embedded_billing_is_a_subscription_platform(tmp_path: Path,
                                                                    engine: Engine) -> None:
    config = parse_config(tomllib.loads(DEFAULT_CONFIG.read_text()), tmp_path)
    port = build_ports(config, engine).platforms["billing"]
    assert isinstance(port, EmbeddedSubscriptionPlatform)
    port.upsert_customer(ACME, ctx("k-customer"))
    receipt = port.apply_order(NEW, ctx("k-new"))
    assert (receipt.external_id, receipt.detail["version"]) == (CONTRACT, "1")


def test_cpq_versions_translated_by_the_shipped_catalogue_map_apply_as_ordered(
        harness: PlatformHarness) -> None:
    """The hub's translation (domain.catalog_map) and this port agree: CPQ's new order, the
    mid-quarter upgrade, a 5 % uplift renewal and a cancellation quoted at zero apply."""
    shipped = catalog_map.parse(DEFAULT_CATALOG_MAP.read_text())
    harness.port.upsert_customer(ACME, ctx("k-customer"))
    v1 = q2ckit.contract(1, q2ckit.seats(500))
    v2 = q2ckit.contract(2, q2ckit.seats(800), q2ckit.analytics(start=UPGRADE),
                         effective=UPGRADE)
    v3 = q2ckit.renewed(v2, 3, q2ckit.seats(800, "126.00", start=END, end=date(2028, 1, 1)),
                        q2ckit.analytics("25200.00", start=END, end=date(2028, 1, 1)))
    zeroed = tuple(replace(x, quantity=0) for x in v3.lines)
    v4 = replace(v3, version=4, kind=CommercialKind.CANCELLATION, quote_id="Q-CPQ-C1-4",
                 effective_date=date(2027, 7, 1), lines=zeroed)
    versions = [harness.port.apply_order(catalog_map.translate(v, shipped, 1), ctx(f"k-{n}"))
                .detail["version"] for n, v in enumerate((v1, v2, v3, v4))]
    assert versions == ["1", "2", "3", "4"]
    # 300 x 120.00 x 231/365 = 22783.56; 24000.00 x 231/365 = 15189.04 (the suite's working)
    assert harness.invoiced("Q-CPQ-C1-2") == [usd("22783.56"), usd("15189.04")]
    found = harness.port.contract("CPQ-C1")
    assert found is not None and found.end_date == date(2027, 7, 1)
