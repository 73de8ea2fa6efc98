"""Quote to cash through a real hub on SQLite and PostgreSQL: CPQ versions ordered from
billing through the catalogue map, held when unmapped and retried when the map changes,
billing's resulting contract checked against the order, renewals against their baseline,
and the status of it all.

Billing here is a small recording `SubscriptionPlatformPort` (idempotent by order id, as
the port's contract says): these tests are about the hub's routing and records; the
embedded billing's own behaviour has its contract suite (tests/contract/)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, Engine, text

from finsync.api.app import create_app
from finsync.auth.principal import AUDIT_READ, FINANCE_READ
from finsync.bootstrap import Ports, build_targets
from finsync.config import ConfigError, CpqSection
from finsync.connectors.embedded.order_plan import OrderMismatchError
from finsync.connectors.ports import DeliveryContext, OrderNotAppliedError, Receipt
from finsync.domain import codec
from finsync.domain.catalog_map import parse
from finsync.domain.commercial import CommercialContract, SubscriptionOrder
from finsync.domain.contract import (
    ContractAmendment,
    ContractLine,
    SubscriptionContract,
)
from finsync.domain.errors import ExceptionClass, PermanentError, TransientError
from finsync.domain.events import (
    AnyEvent,
    BusinessDomain,
    CommercialContractApproved,
    ContractAmended,
    ContractCreated,
    EventType,
)
from finsync.domain.party import CustomerAccount
from finsync.domain.status import OrderState
from finsync.hub import catalog_map, cpq_status, version_check
from finsync.hub.catalog_map import Known
from finsync.hub.milestone import Milestone
from finsync.hub.order_desk import OrderDesk, renewal_fingerprint
from finsync.hub.service import Hub
from finsync.hub.settings import DeliveryPolicy, HubSettings
from finsync.hub.target import billing_target
from finsync.hub.version_check import fingerprint
from finsync.storage import cpq_log, event_log, exception_log, outbox
from finsync.storage.db import reading, transaction
from finsync.storage.schema import metadata
from tests import authkit
from tests.builders import envelope
from tests.hubkit import Clock, ingest, make_hub, shipped_config
from tests.q2ckit import TERM_END, analytics, contract, line, renewed, seats

SHIPPED = (Path(__file__).parents[2] / "src/finsync/default_cpq_catalog.toml").read_text()
MYSTERY = """
[[products]]
code = "MYSTERY"
billing_product = "prod_platform_seat"
prices = { USD = "price_seat_annual" }
ssp_product = "prod_platform_seat"
revenue_account = "4000"
"""
OWNERSHIP = {d: "billing" for d in BusinessDomain} | {BusinessDomain.COMMERCIAL: "cpq"}
ROUTES = {"commercial_contract.approved": ("billing",)}


@dataclass
class RecordingPlatform:
    """Billing as far as routing goes: what it was asked, each order applied once."""

    system: str = "billing"
    orders: list[SubscriptionOrder] = field(default_factory=list)
    customers: list[CustomerAccount] = field(default_factory=list)
    receipts: dict[str, Receipt] = field(default_factory=dict)
    refusal: PermanentError | None = None  # what billing answers every order with, if set
    failure: Callable[[SubscriptionOrder], Exception] | None = None  # or this, if set

    def apply_order(self, order: SubscriptionOrder, ctx: DeliveryContext) -> Receipt:
        if self.refusal is not None:
            raise self.refusal
        if self.failure is not None:
            raise self.failure(order)
        if order.id not in self.receipts:
            self.orders.append(order)
            self.receipts[order.id] = Receipt(order.contract_id,
                                              detail={"version": str(len(self.orders))})
        return self.receipts[order.id]

    def upsert_customer(self, customer: CustomerAccount, ctx: DeliveryContext) -> Receipt:
        self.customers.append(customer)
        return Receipt(customer.id)

    def contract(self, contract_id: str) -> SubscriptionContract | None:
        return None

    def find_receipt(self, key: str) -> Receipt | None:
        return None


@pytest.fixture
def platform() -> RecordingPlatform:
    return RecordingPlatform()


@pytest.fixture
def hub(engine: Engine, tmp_path: Path, platform: RecordingPlatform) -> Hub:
    clock = Clock()
    settings = HubSettings(OWNERSHIP, ROUTES, DeliveryPolicy(  # type: ignore[arg-type]
        attempts_max=5, backoff_base_s=1, backoff_cap_s=60, lease_s=30, batch_size=20),
        gap_wait_s=300, intake_batch_size=50)
    return make_hub(engine, tmp_path, clock=clock, hub_settings=settings,
                    targets={"billing": billing_target(platform, OrderDesk(engine, clock))})


def load(hub: Hub, text: str = SHIPPED, known: Known | None = None) -> catalog_map.CatalogLoad:
    return catalog_map.load(hub.engine, text, "test.toml", known or Known(), hub.clock)


def send(hub: Hub, *events: tuple[AnyEvent, str, str]) -> None:
    """Each `(event, source, correlation id)` as a canonical envelope, then a hub run."""
    lines = []
    for event, source, correlation in events:
        ref = event.aggregate()
        lines.append(json.dumps(envelope(
            event.name, f"{source}-{ref.type}-{ref.id}-{ref.version}",
            (ref.type, ref.id, ref.version), codec.encode_event(event),
            correlation_id=correlation, source=source)).encode())
    ingest(hub, lines)
    hub.run_until_idle()


def approve(hub: Hub, *versions: CommercialContract) -> None:
    send(hub, *((CommercialContractApproved(v), "cpq", v.quote_id) for v in versions))


def billed(order: SubscriptionOrder, version: int, **changes: object) -> SubscriptionContract:
    lines = tuple(ContractLine(ln.line_id, ln.product_id, ln.price_id, ln.quantity,
                               ln.unit_price, ln.start_date, ln.end_date)
                  for ln in order.lines)
    made = SubscriptionContract(order.contract_id, order.customer_id, order.legal_entity,
                                order.currency, order.start_date, order.end_date,
                                order.billing_frequency, lines, version=version)
    return replace(made, **changes)  # type: ignore[arg-type]


def report(hub: Hub, quote: str, version: int, contract_: SubscriptionContract) -> None:
    """Billing's contract event for the order of `quote` (its amendment id)."""
    event: AnyEvent = ContractCreated(contract_) if version == 1 else ContractAmended(
        ContractAmendment(quote, contract_.id, version, contract_.start_date, "cpq", (),
                          contract_))
    send(hub, (event, "billing", quote))


def open_exceptions(hub: Hub) -> dict[str, str]:
    with reading(hub.engine) as conn:
        return {r["fingerprint"]: r["summary"] for r in exception_log.listing(conn)
                if r["status"] in ("open", "retrying")}


def statuses(hub: Hub) -> list[str]:
    with reading(hub.engine) as conn:
        return [str(r["status"]) for r in exception_log.listing(conn)]


def test_migrations_create_the_cpq_tables_as_declared(engine: Engine) -> None:
    hub = set(metadata.tables)  # the systems' tables have their own migrations
    ours = {n for n in hub if n.startswith("cpq_")}
    assert ours == {"cpq_catalog_versions", "cpq_catalog_entries", "cpq_orders",
                    "cpq_baselines"}
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={
            "include_name": lambda name, kind, _p: kind != "table" or name in hub})
        assert compare_metadata(context, metadata) == []


def test_catalogue_version_moves_only_with_content(hub: Hub) -> None:
    assert load(hub) == catalog_map.CatalogLoad(1, True, 0)
    assert load(hub) == catalog_map.CatalogLoad(1, False, 0)
    assert load(hub, SHIPPED + MYSTERY).version == 2
    assert load(hub).version == 3  # the first content back in force is a new version
    with reading(hub.engine) as conn:
        assert [v["entries"] for v in cpq_log.catalog_versions(conn)] == [3, 4, 3]
        current = cpq_log.current_catalog(conn)
    assert current is not None and current[0] == 3
    assert current[1] == parse(SHIPPED)  # what is stored reads back as what was loaded


def test_a_map_that_disagrees_with_billing_is_refused_before_storing(hub: Hub) -> None:
    known = Known(prices={"price_seat_annual": ("prod_platform_seat", "USD")})
    with pytest.raises(catalog_map.CatalogMapError, match="billing has no price "
                       "price_analytics_annual"):
        load(hub, known=known)
    with reading(hub.engine) as conn:
        assert cpq_log.catalog_versions(conn) == []


def test_an_approved_version_is_ordered_once_in_billings_ids(hub: Hub,
                                                             platform: RecordingPlatform
                                                             ) -> None:
    load(hub)
    v1 = contract(1, seats(500), uplift="7")
    approve(hub, v1)
    approve(hub, v1)  # re-sent: a duplicate, never ordered twice
    assert [(o.id, o.lines[0].price_id, o.lines[0].quantity, o.catalog_version)
            for o in platform.orders] == [("Q-CPQ-C1-1", "price_seat_annual", 500, 1)]
    assert Milestone.ORDER_ACCEPTED in {m["name"] for m in hub.timeline("Q-CPQ-C1-1")}
    with reading(hub.engine) as conn:
        record = cpq_log.order(conn, "Q-CPQ-C1-1")
        baseline = cpq_log.baseline(conn, "CPQ-C1")
    assert record is not None and record.state is OrderState.SENT
    assert record.order == platform.orders[0]
    assert baseline is not None and baseline.uplift_percent == 7


def test_an_unmapped_product_is_held_before_billing_then_retried(
        hub: Hub, platform: RecordingPlatform) -> None:
    load(hub)
    v1 = contract(1, seats(500), line("L-x", "MYSTERY", 2, "10.00"))
    v2 = contract(2, seats(800), line("L-x", "MYSTERY", 2, "10.00"))
    approve(hub, v1, v2)
    assert platform.orders == []  # nothing reached billing; v2 waits behind v1
    held = open_exceptions(hub)
    assert len(held) == 1
    (summary,) = held.values()
    assert "master_data_mismatch" not in summary  # the summary says what, the class which
    assert "line L-x: product MYSTERY" in summary
    with reading(hub.engine) as conn:
        record = cpq_log.order(conn, "Q-CPQ-C1-1")
    assert record is not None and record.state is OrderState.HELD
    # Finance maps the product: a new catalogue version sends the held order out again.
    assert load(hub, SHIPPED + MYSTERY) == catalog_map.CatalogLoad(2, True, 1)
    assert statuses(hub) == ["retrying"]  # the hub sends it again by itself
    hub.run_until_idle()
    assert [(o.id, o.catalog_version) for o in platform.orders] == [
        ("Q-CPQ-C1-1", 2), ("Q-CPQ-C1-2", 2)]
    assert open_exceptions(hub) == {}


def test_a_new_map_that_still_lacks_the_product_leaves_the_order_held(
        hub: Hub, platform: RecordingPlatform) -> None:
    load(hub)
    approve(hub, contract(1, seats(500), line("L-x", "MYSTERY", 2, "10.00")))
    assert load(hub, SHIPPED.replace('"4100"', '"4000"')).retried == 1
    hub.run_until_idle()
    assert platform.orders == []
    assert statuses(hub) == ["open"]
    with reading(hub.engine) as conn:
        record = cpq_log.order(conn, "Q-CPQ-C1-1")
    assert record is not None and (record.state, record.catalog_version) == (
        OrderState.HELD, 2)


def test_billings_contract_is_checked_line_by_line(hub: Hub,
                                                   platform: RecordingPlatform) -> None:
    load(hub)
    approve(hub, contract(1, seats(500)))
    (first,) = platform.orders
    # Billing made 499 seats of it: the mismatch names the line and the field.
    report(hub, "Q-CPQ-C1-1", 1, billed(first, 1, lines=(
        replace(billed(first, 1).lines[0], quantity=499),)))
    found = open_exceptions(hub)
    assert list(found) == [fingerprint("Q-CPQ-C1-1")]
    assert "line L-seats: quantity 500 != 499" in found[fingerprint("Q-CPQ-C1-1")]
    # The 15 May upgrade: 800 seats and the analytics module; billing agrees this time.
    approve(hub, contract(2, seats(800), analytics(), effective=date(2026, 5, 15)))
    second = platform.orders[1]
    report(hub, "Q-CPQ-C1-2", 2, billed(second, 2))
    assert open_exceptions(hub) == {}
    status = cpq_status.contract_status(hub.engine, "CPQ-C1")
    assert status is not None
    assert [(v.cpq_version, v.order_state) for v in status.versions] == [
        (1, OrderState.MISMATCH), (2, OrderState.APPLIED)]
    assert {m.name for m in status.versions[1].milestones} >= {
        Milestone.ORDER_ACCEPTED, Milestone.CONTRACT_ACCEPTED, Milestone.EXCEPTION_RESOLVED}
    rendered = cpq_status.as_json(status)
    assert rendered["versions"][0]["order_state"] == "mismatch"
    assert rendered["versions"][1]["deliveries"] == [{"target": "billing", "status": "done"}]


def test_a_renewal_off_its_baseline_opens_a_mismatch_and_is_still_ordered(
        hub: Hub, platform: RecordingPlatform) -> None:
    load(hub)
    first = contract(1, seats(500), uplift="7")
    approve(hub, first)
    # 120.00 x 1.07 = 128.40 was due; CPQ approved 125.00.
    approve(hub, renewed(first, 2, seats(500, "125.00", start=TERM_END,
                                         end=date(2028, 1, 1))))
    assert [o.id for o in platform.orders] == ["Q-CPQ-C1-1", "Q-CPQ-C1-2"]
    found = open_exceptions(hub)
    assert list(found) == [renewal_fingerprint("Q-CPQ-C1-2")]
    assert "line L-seats: net_unit_price 128.40 USD != 125.00 USD" in next(iter(
        found.values()))
    with reading(hub.engine) as conn:
        (row,) = exception_log.for_correlation(conn, "Q-CPQ-C1-2")
    assert (row["class"], row["at_stake"]) == (
        "master_data_mismatch", {"amount": "62500.00", "currency": "USD"})  # 500 x 125.00


def test_a_renewal_at_its_baseline_opens_nothing(hub: Hub,
                                                 platform: RecordingPlatform) -> None:
    load(hub)
    first = contract(1, seats(500), uplift="7")
    approve(hub, first, renewed(first, 2, seats(500, "128.40", start=TERM_END,
                                                end=date(2028, 1, 1))))
    assert len(platform.orders) == 2
    assert open_exceptions(hub) == {}
    with reading(hub.engine) as conn:
        baseline = cpq_log.baseline(conn, "CPQ-C1")
    assert baseline is not None and baseline.cpq_version == 2


def test_bootstrap_wires_billing_platforms_and_loads_the_shipped_map(
        engine: Engine, tmp_path: Path, platform: RecordingPlatform) -> None:
    config = shipped_config(tmp_path)
    targets = build_targets(config, engine, ports=Ports(platforms={"billing": platform}))
    assert targets["billing"].handles(EventType.COMMERCIAL_CONTRACT_APPROVED)
    assert targets["billing"].handles(EventType.CUSTOMER_UPSERTED)
    assert targets["billing"].milestone(EventType.COMMERCIAL_CONTRACT_APPROVED) == \
        Milestone.ORDER_ACCEPTED
    with reading(engine) as conn:
        assert [v["entries"] for v in cpq_log.catalog_versions(conn)] == [3]


def test_bootstrap_refuses_a_map_billing_cannot_sell(engine: Engine, tmp_path: Path,
                                                      platform: RecordingPlatform) -> None:
    (tmp_path / "map.toml").write_text(SHIPPED.replace("price_analytics_annual",
                                                       "price_analytics_monthly"))
    config = shipped_config(tmp_path).model_copy(update={"cpq": CpqSection(catalog="map.toml")})
    with pytest.raises(ConfigError, match="product PREMIUM-ANALYTICS: billing has no price "
                       "price_analytics_monthly"):
        build_targets(config, engine, ports=Ports(platforms={"billing": platform}))


def test_the_api_reads_a_contracts_status_with_finance_read(hub: Hub,
                                                           platform: RecordingPlatform) -> None:
    load(hub)
    approve(hub, contract(1, seats(500)))
    app = create_app(hub)
    reader = authkit.client(app, hub.engine, [FINANCE_READ])
    found = reader.get("/v1/cpq/contracts/CPQ-C1")
    assert found.status_code == 200
    assert [(v["quote_id"], v["order_state"]) for v in found.json()["versions"]] == [
        ("Q-CPQ-C1-1", "sent")]
    assert reader.get("/v1/cpq/contracts/NOPE").json()["error"]["code"] == "not_found"
    assert reader.get("/v1/cpq/contracts/NOPE").status_code == 404
    stranger = authkit.client(app, hub.engine, [AUDIT_READ])
    assert stranger.get("/v1/cpq/contracts/CPQ-C1").status_code == 403


def test_an_order_before_any_map_is_held_then_sent_once_one_is_loaded(
        hub: Hub, platform: RecordingPlatform) -> None:
    approve(hub, contract(1, seats(500)))
    assert platform.orders == []
    (summary,) = open_exceptions(hub).values()
    assert "no catalogue map is loaded" in summary
    assert load(hub).retried == 1
    hub.run_until_idle()
    assert [(o.id, o.catalog_version) for o in platform.orders] == [("Q-CPQ-C1-1", 1)]
    assert open_exceptions(hub) == {}


def test_a_replayed_renewal_never_reopens_what_finance_resolved(
        hub: Hub, platform: RecordingPlatform) -> None:
    load(hub)
    first = contract(1, seats(500), uplift="7")
    approve(hub, first, renewed(first, 2, seats(500, "125.00", start=TERM_END,
                                                end=date(2028, 1, 1))))
    key = renewal_fingerprint("Q-CPQ-C1-2")
    with transaction(hub.engine) as conn:
        assert exception_log.resolve_by_fingerprint(conn, key, "agreed with sales", hub.clock())
        outbox.requeue(conn, [str(v["event_id"]) for v in cpq_log.versions_of(conn, "CPQ-C1")],
                       hub.clock())
    hub.run_until_idle()
    assert len(platform.orders) == 2  # billing answered the replay with its first receipts
    assert open_exceptions(hub) == {}


def test_a_refused_order_is_refused_until_finance_retries_it(
        hub: Hub, platform: RecordingPlatform) -> None:
    load(hub)
    platform.refusal = OrderMismatchError(
        "proration_terms", "order Q-CPQ-C1-1 asks for proration 'none'; billing invoices "
        "a mid-term change at once (invoice_now) and has no other mode")
    approve(hub, contract(1, seats(500)))
    status = cpq_status.contract_status(hub.engine, "CPQ-C1")
    assert status is not None
    (version,) = status.versions
    assert version.order_state is OrderState.REFUSED
    assert version.detail is not None
    assert version.detail.startswith("proration_terms: order Q-CPQ-C1-1 asks for proration")
    assert version.deliveries == (("billing", "failed"),)
    assert [e.exception_class for e in version.exceptions] == ["master_data_mismatch"]
    app = create_app(hub)
    reader = authkit.client(app, hub.engine, [FINANCE_READ])
    (shown,) = reader.get("/v1/cpq/contracts/CPQ-C1").json()["versions"]
    assert (shown["order_state"], shown["detail"]) == ("refused", version.detail)
    # Billing takes it now; finance retries the delivery (what triage's retry does).
    platform.refusal = None
    with transaction(hub.engine) as conn:
        (delivery_id,) = cpq_log.delivery_ids(conn, [_delivery_key(conn, "Q-CPQ-C1-1")])
        assert outbox.retry_now(conn, delivery_id, hub.clock())
    hub.run_until_idle()
    assert [o.id for o in platform.orders] == ["Q-CPQ-C1-1"]
    with reading(hub.engine) as conn:
        record = cpq_log.order(conn, "Q-CPQ-C1-1")
    assert record is not None and (record.state, record.detail) == (OrderState.SENT, None)
    assert open_exceptions(hub) == {}
    report(hub, "Q-CPQ-C1-1", 1, billed(platform.orders[0], 1))  # billing's contract
    with reading(hub.engine) as conn:
        record = cpq_log.order(conn, "Q-CPQ-C1-1")
    assert record is not None and record.state is OrderState.APPLIED


def _delivery_key(conn: Connection, quote_id: str) -> str:
    record = cpq_log.order(conn, quote_id)
    assert record is not None and record.delivery_key is not None
    return record.delivery_key


def test_an_order_replayed_under_a_new_map_is_checked_again_not_left_sent(
        hub: Hub, platform: RecordingPlatform) -> None:
    load(hub)
    approve(hub, contract(1, seats(500)))
    report(hub, "Q-CPQ-C1-1", 1, billed(platform.orders[0], 1))
    load(hub, SHIPPED + MYSTERY)  # catalogue version 2: a replay re-translates the order
    with transaction(hub.engine) as conn:
        outbox.requeue(conn, [str(v["event_id"]) for v in cpq_log.versions_of(conn, "CPQ-C1")],
                       hub.clock())
    hub.run_until_idle()
    assert len(platform.orders) == 1  # billing answered with its first receipt, no event
    with reading(hub.engine) as conn:
        record = cpq_log.order(conn, "Q-CPQ-C1-1")
    # The recorded order was sent again, not a re-translation under catalogue version 2.
    assert record is not None and (record.state, record.catalog_version) == (
        OrderState.APPLIED, 1)


# -- redeliveries, replays and failures (review of the version check and the order desk) ---

SEATS_ONLY_MYSTERY = MYSTERY  # a map without SEATS-ANNUAL: v1's lines no longer translate


def recheck(hub: Hub, quote: str) -> None:
    """Check billing's accepted contract event of `quote` again (what a redelivery does)."""
    with transaction(hub.engine) as conn:
        for row in event_log.chain(conn, quote):
            env = event_log.get(conn, str(row["event_id"]))
            if env is not None and version_check.acts_on(env.event):
                version_check.accepted(conn, env, hub.clock())


def order_of(hub: Hub, quote: str) -> cpq_log.OrderRecord:
    with reading(hub.engine) as conn:
        record = cpq_log.order(conn, quote)
    assert record is not None
    return record


def test_an_older_version_agreeing_again_leaves_a_later_mismatch_open(
        hub: Hub, platform: RecordingPlatform) -> None:
    load(hub)
    approve(hub, contract(1, seats(500)))
    report(hub, "Q-CPQ-C1-1", 1, billed(platform.orders[0], 1))
    approve(hub, contract(2, seats(800), effective=date(2026, 5, 15)))
    second = platform.orders[1]
    # Billing made 500 seats of the 800 ordered: 300 seats underbilled.
    report(hub, "Q-CPQ-C1-2", 2, billed(second, 2, lines=(
        replace(billed(second, 2).lines[0], quantity=500),)))
    assert list(open_exceptions(hub)) == [fingerprint("Q-CPQ-C1-2")]
    recheck(hub, "Q-CPQ-C1-1")  # v1 alone redelivered: it agrees with its own order
    assert list(open_exceptions(hub)) == [fingerprint("Q-CPQ-C1-2")]
    assert order_of(hub, "Q-CPQ-C1-2").state is OrderState.MISMATCH


def test_a_recheck_never_reopens_a_mismatch_finance_decided(
        hub: Hub, platform: RecordingPlatform) -> None:
    load(hub)
    approve(hub, contract(1, seats(500)))
    report(hub, "Q-CPQ-C1-1", 1, billed(platform.orders[0], 1, lines=(
        replace(billed(platform.orders[0], 1).lines[0], quantity=499),)))
    key = fingerprint("Q-CPQ-C1-1")
    with transaction(hub.engine) as conn:
        (row,) = exception_log.resolve_by_fingerprint(conn, key, "accepted: one seat free",
                                                      hub.clock())
    recheck(hub, "Q-CPQ-C1-1")  # a full requeue finds the same difference again
    with reading(hub.engine) as conn:
        after = exception_log.get(conn, int(row["id"]))
    assert after is not None
    assert (after["status"], after["correlation_id"]) == ("resolved", "Q-CPQ-C1-1")
    assert open_exceptions(hub) == {}


def test_a_replay_under_a_map_that_lost_the_product_resends_the_recorded_order(
        hub: Hub, platform: RecordingPlatform) -> None:
    load(hub)
    approve(hub, contract(1, seats(500)))
    report(hub, "Q-CPQ-C1-1", 1, billed(platform.orders[0], 1))
    load(hub, SEATS_ONLY_MYSTERY)  # catalogue version 2 no longer maps SEATS-ANNUAL
    with transaction(hub.engine) as conn:
        outbox.requeue(conn, [str(v["event_id"]) for v in cpq_log.versions_of(conn, "CPQ-C1")],
                       hub.clock())
    hub.run_until_idle()
    assert len(platform.orders) == 1  # billing answered the replay with its first receipt
    record = order_of(hub, "Q-CPQ-C1-1")
    assert (record.state, record.catalog_version) == (OrderState.APPLIED, 1)
    assert record.order == platform.orders[0]
    assert open_exceptions(hub) == {}


def test_billing_unavailable_leaves_the_order_failed_not_sent(
        hub: Hub, platform: RecordingPlatform) -> None:
    load(hub)
    platform.failure = lambda order: TransientError(f"billing is down for {order.id}")
    approve(hub, contract(1, seats(500)))
    record = order_of(hub, "Q-CPQ-C1-1")
    assert (record.state, record.detail) == (
        OrderState.FAILED, "TransientError: billing is down for Q-CPQ-C1-1")


def test_a_defect_in_billing_leaves_the_order_failed_with_its_class(
        hub: Hub, platform: RecordingPlatform) -> None:
    load(hub)
    platform.failure = lambda order: KeyError("price_seat_annual")
    approve(hub, contract(1, seats(500)))
    status = cpq_status.contract_status(hub.engine, "CPQ-C1")
    assert status is not None
    (version,) = status.versions
    assert (version.order_state, version.detail) == (
        OrderState.FAILED, "KeyError: 'price_seat_annual'")


def test_billing_changed_differently_is_a_mismatch_not_a_refusal(
        hub: Hub, platform: RecordingPlatform) -> None:
    load(hub)
    platform.failure = lambda order: OrderNotAppliedError(
        order, ("line L-seats: quantity 500 != 499",))
    approve(hub, contract(1, seats(500)))
    status = cpq_status.contract_status(hub.engine, "CPQ-C1")
    assert status is not None
    (version,) = status.versions
    assert version.order_state is OrderState.MISMATCH
    assert version.detail is not None and "quantity 500 != 499" in version.detail
    assert [e.exception_class for e in version.exceptions] == ["master_data_mismatch"]


def test_a_late_refusal_never_downgrades_an_applied_order(
        hub: Hub, platform: RecordingPlatform) -> None:
    load(hub)
    approve(hub, contract(1, seats(500)))
    report(hub, "Q-CPQ-C1-1", 1, billed(platform.orders[0], 1))  # billing's event first
    desk = OrderDesk(hub.engine, hub.clock)
    desk.refused(platform.orders[0], PermanentError(
        "duplicate_id: already applied", exception_class=ExceptionClass.INTERNAL_ERROR))
    assert order_of(hub, "Q-CPQ-C1-1").state is OrderState.APPLIED
    desk.failed(platform.orders[0], TransientError("timeout"))
    assert order_of(hub, "Q-CPQ-C1-1").state is OrderState.APPLIED


# PostgreSQL only: SQLite takes one writer at a time (BEGIN IMMEDIATE) already.
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_loaders_of_a_new_map_take_turns(engine: Engine) -> None:
    at = Clock()()
    ready = threading.Event()
    second: dict[str, object] = {}

    def other_worker() -> None:
        try:
            with transaction(engine) as conn:
                second["pid"] = conn.execute(text("SELECT pg_backend_pid()")).scalar()
                ready.set()
                second["stored"] = cpq_log.store_catalog(conn, parse(MYSTERY), "b" * 64,
                                                         "other.toml", at)
        except Exception as exc:  # reported below, not lost in the thread
            second["error"] = exc
            ready.set()

    with engine.connect() as first:
        with first.begin():
            assert cpq_log.store_catalog(first, parse(SHIPPED), "a" * 64, "one.toml",
                                         at) == (1, True)
            worker = threading.Thread(target=other_worker)
            worker.start()
            assert ready.wait(60)
            _wait_for_lock(engine, second.get("pid"))
        worker.join(60)
    assert "error" not in second, second.get("error")
    assert second["stored"] == (2, True)


def _wait_for_lock(engine: Engine, pid: object) -> None:
    """Until backend `pid` waits on a lock (bounded: 600 looks)."""
    for _ in range(600):
        with engine.connect() as conn:
            waiting = conn.execute(text(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"),
                {"pid": pid}).scalar()
        if waiting == "Lock":
            return
        threading.Event().wait(0.1)
    raise AssertionError(f"backend {pid} never waited on a lock")
