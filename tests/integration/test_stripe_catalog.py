"""Stripe subscriptions become revenue contracts on the revenue catalogue's products, in the
legal entity of their Stripe account (issue 15, Build 5 and 6), through the hub on both
databases; a Connect account's events are polled with its `Stripe-Account` (a local stub
of Stripe's `/v1/events` answers per account).

An item at a price the source's catalogue does not map is refused as a
`master_data_mismatch` naming the price (the raw event kept), not booked on a product no
SSP exists for; once finance maps the price in `[stripe.<source>.catalog]`, a retry of the
exception maps the event again and the revenue engine books the contract, allocating by the
catalogue's SSPs.

Hand-worked figures: 10 seats at 120.00 a year = 1,200.00 and one analytics module at
24,000.00 a year; the two SSPs (120.00 a seat, 24,000.00 a module) are in the same ratio
as the prices, so each obligation is allocated its own price: 1,200.00 and 24,000.00,
transaction price 25,200.00.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from finsync.bootstrap import Finance, build_finance, build_pumps
from finsync.config import FinsyncConfig, parse_config
from finsync.demo.clock import SimClock
from finsync.domain.events import BusinessDomain
from finsync.storage.db import make_engine
from finsync.storage.raw_log import RawIn
from tests.people import BOB
from tests.stripeshapes import T0, delivered, event
from tests.stripeshapes.contracts import item, price, subscription

SEATS = price("price_seats_annual", "prod_seats", 12_000)
ANALYTICS = price("price_analytics_annual", "prod_analytics", 2_400_000)
DAY_AFTER = datetime.fromtimestamp(T0, UTC).date()


def settings(tmp_path: Path, base_url: str = "http://127.0.0.1:9", poll_on_run: bool = False,
             **catalog: dict[str, str]) -> FinsyncConfig:
    revenue_routes = ("contract.created", "contract.amended", "contract.cancelled",
                      "invoice.issued")
    return parse_config({
        "ownership": {d.value: "stripe" for d in BusinessDomain} | {
            "ledger": "ledger", "revenue": "revrec", "tax": "tax"},
        "sources": {"stripe": "stripe"},
        "stripe": {"stripe": {"legal_entity": "le_us", "poll_on_run": poll_on_run,
                              "base_url": base_url, "api_key_env": "FINSYNC_TEST_STRIPE_KEY",
                              "connected_accounts": {"acct_1DE": "le_de"},
                              "catalog": catalog}},
        "systems": {"revrec": {"role": "revenue", "connector": "embedded"},
                    "ledger": {"role": "ledger", "connector": "embedded"},
                    "billing": {"role": "billing", "connector": "embedded"}},
        "routes": {t: ["revrec"] for t in revenue_routes},
        "revenue": {"ssp": [
            {"product_id": "platform_seat", "amount": "120.00", "currency": "USD",
             "effective_from": "2020-01-01"},
            {"product_id": "premium_analytics", "amount": "24000.00", "currency": "USD",
             "effective_from": "2020-01-01"}]},
    }, tmp_path)


def finance_of(config: FinsyncConfig, db_url: str) -> Finance:
    clock = SimClock(datetime.fromtimestamp(T0 + 3600, UTC))
    return build_finance(config, engine=make_engine(db_url), clock=clock)


def created(sub: dict[str, Any], evt: str, account: str | None = None) -> RawIn:
    body = delivered(event("customer.subscription.created", sub, evt=evt, account=account),
                     version=1)
    return RawIn("stripe", body, {})


def test_an_unmapped_price_waits_as_master_data_then_books_once_mapped(
        db_url: str, tmp_path: Path) -> None:
    sub = subscription([item("si_seats", SEATS, 10), item("si_analytics", ANALYTICS, 1)])
    before = finance_of(settings(tmp_path, prices={"price_seats_annual": "platform_seat"}),
                        db_url)
    try:
        before.hub.intake.store([created(sub, "evt_sub_1")])
        before.hub.run_until_idle()
        (row,) = before.triage.listing()
        assert row["class"] == "master_data_mismatch"
        assert "price_analytics_annual" in row["summary"]
        assert "prod_analytics" in row["summary"]
        assert before.ports.revenue().positions("le_us", DAY_AFTER) == []
    finally:
        before.hub.engine.dispose()
    # finance maps the module's product to the revenue catalogue's, then retries
    after = finance_of(settings(tmp_path, prices={"price_seats_annual": "platform_seat"},
                                products={"prod_analytics": "premium_analytics"}), db_url)
    try:
        outcome = after.triage.retry(int(row["id"]), BOB, "prod_analytics mapped")
        assert outcome.status == "done"
        after.hub.run_until_idle()
        # the raw event mapped once sent again: its exception resolves by itself
        assert [(e["class"], e["status"], e["resolution_note"])
                for e in after.triage.listing(status=None)] == [
            ("master_data_mismatch", "resolved",
             f"hub: raw event #{row['raw_event_id']} mapped on retry")]
        (position,) = after.ports.revenue().positions("le_us", DAY_AFTER)
        assert position.subscription_contract_id == sub["id"]
        assert position.transaction_price.amount == Decimal("25200.00")
        schedules = after.ports.revenue().schedules(sub["id"])
        assert sorted((s.obligation_id, str(s.allocated_price.amount)) for s in schedules) == [
            ("si_analytics", "24000.00"), ("si_seats", "1200.00")]
    finally:
        after.hub.engine.dispose()


def test_a_connect_account_s_subscription_books_into_its_legal_entity(
        db_url: str, tmp_path: Path) -> None:
    mapped = settings(tmp_path, prices={"price_seats_annual": "platform_seat"})
    finance = finance_of(mapped, db_url)
    try:
        de = subscription([item("si_de", SEATS, 10, sub="sub_de")], sub="sub_de")
        stray = subscription([item("si_x", SEATS, 1, sub="sub_x")], sub="sub_x")
        finance.hub.intake.store([created(de, "evt_de", account="acct_1DE"),
                                  created(stray, "evt_x", account="acct_1XX")])
        finance.hub.run_until_idle()
        (position,) = finance.ports.revenue().positions("le_de", DAY_AFTER)
        assert position.subscription_contract_id == "sub_de"
        assert finance.ports.revenue().positions("le_us", DAY_AFTER) == []
        (row,) = finance.triage.listing()
        assert (row["class"], "acct_1XX" in row["summary"]) == ("mapping_error", True)
    finally:
        finance.hub.engine.dispose()


class _Events(BaseHTTPRequestHandler):
    """`GET /v1/events` as Stripe answers it for the account of the request's
    `Stripe-Account` (the platform's own without one)."""

    by_account: ClassVar[dict[str, list[dict[str, Any]]]] = {}
    asked: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        account = self.headers.get("Stripe-Account") or ""
        type(self).asked.append(account)
        data = self.by_account.get(account, []) if self.path.startswith("/v1/events") else []
        body = json.dumps({"object": "list", "data": data, "has_more": False,
                           "url": "/v1/events"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def stripe_stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("FINSYNC_TEST_STRIPE_KEY", "sk_test_connect")
    monkeypatch.setattr(_Events, "asked", [])
    server = HTTPServer(("127.0.0.1", 0), _Events)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_a_connect_account_s_events_are_polled_with_its_stripe_account(
        db_url: str, tmp_path: Path, stripe_stub: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stripe's `/v1/events` of a Connect account (asked with `Stripe-Account`) carry no
    `account`: the account's poller delivers each with it, numbered (subscriptions are
    versioned by the poller), so the contract books into the account's entity."""
    de = subscription([item("si_de", SEATS, 10, sub="sub_de")], sub="sub_de")
    polled = event("customer.subscription.created", de, evt="evt_de")
    monkeypatch.setattr(_Events, "by_account", {"acct_1DE": [polled]})
    config = settings(tmp_path, stripe_stub, True,
                      prices={"price_seats_annual": "platform_seat"})
    finance = finance_of(config, db_url)
    try:
        pumps = build_pumps(config, finance.hub.engine, finance.hub.clock)
        stored = pumps["stripe"](lambda bodies: finance.hub.store("stripe", bodies, {}))
        assert stored == 1
        assert sorted(set(_Events.asked)) == ["", "acct_1DE"]  # own account, then Connect
        finance.hub.run_until_idle()
        (position,) = finance.ports.revenue().positions("le_de", DAY_AFTER)
        assert position.subscription_contract_id == "sub_de"
        assert finance.triage.listing() == []
    finally:
        finance.hub.engine.dispose()
