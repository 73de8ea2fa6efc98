"""The Stripe subscription platform (`connectors/stripe/orders.py`) against a real
localstripe, on SQLite and PostgreSQL; every write it sends is also checked against the
parameters Stripe publishes for the operation (`CheckedClient`).

What localstripe cannot do is said where a test meets it (tests/stripe reference notes):
Plans only (the platform names prices as `plan`), one item per subscription, no metadata
change on a subscription update (only at creation), `proration_behavior` on an update
answered 500, no search, idempotency keys ignored. The upgrade's requests under each
proration term are checked against Stripe's published shape in
tests/unit/stripe/test_order_params.py; here the upgrade shows what localstripe answers.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import urllib.parse
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import pytest
from sqlalchemy import Engine, delete

from finsync.connectors.ports import DeliveryContext
from finsync.connectors.stripe import state as stripe_state
from finsync.connectors.stripe.catalog import Catalog
from finsync.connectors.stripe.client import ClientSettings, Params, StripeClient
from finsync.connectors.stripe.objects import SourceSettings
from finsync.connectors.stripe.order_params import OrderSettings
from finsync.connectors.stripe.orders import StripeSubscriptionPlatform
from finsync.domain.catalog import BillingFrequency
from finsync.domain.commercial import CommercialKind, ProrationTerms, SubscriptionOrder
from finsync.domain.errors import ExceptionClass, PermanentError, TransientError
from finsync.domain.order_check import version_differences
from finsync.domain.proration import add_months
from tests.stripekit import API_KEY, Localstripe
from tests.stripeshapes.requests import check
from tests.unit.stripe import orderkit
from tests.unit.stripe.orderkit import customer


class CheckedClient(StripeClient):
    """The connector's client; each write is first checked against Stripe's published
    parameters of its operation, and kept (`sent`)."""

    def __init__(self, base_url: str) -> None:
        super().__init__("stripe", ClientSettings(API_KEY, base_url, timeout_s=10))
        self.sent: list[tuple[str, str, tuple[tuple[str, str], ...]]] = []

    def send(self, method: str, path: str, params: Params,
             idempotency_key: str) -> Mapping[str, Any]:
        check(method, path, params)
        self.sent.append((method, path, tuple(params)))
        return super().send(method, path, params, idempotency_key)


@dataclasses.dataclass
class Stack:
    stripe: Localstripe
    client: CheckedClient
    platform: StripeSubscriptionPlatform
    engine: Engine
    today: date

    def order(self, quantity: int = 500, **changes: Any) -> SubscriptionOrder:
        """A new order starting today (localstripe's time cannot move)."""
        start = self.today
        first = orderkit.new_order(quantity, start=start)
        end = add_months(start, 12)
        line = dataclasses.replace(first.lines[0], end_date=end)
        return dataclasses.replace(first, end_date=end, lines=(line,), **changes)

    def subscriptions(self) -> list[dict[str, Any]]:
        return list(self.stripe.call("GET", "/v1/subscriptions?status=all&limit=100")["data"])


def ctx(key: str) -> DeliveryContext:
    return DeliveryContext(key, f"evt-{key}", "q-1")


@pytest.fixture
def stack(localstripe: Localstripe, engine: Engine) -> Iterator[Stack]:
    localstripe.reset(None)
    localstripe.call("POST", "/v1/products", {"id": "prod_seat", "name": "Seats"})
    for plan, cents in (("price_seat_annual", 12_000), ("price_analytics_annual", 2_400_000)):
        localstripe.call("POST", "/v1/plans", {"id": plan, "product": "prod_seat",
                                               "amount": cents, "currency": "usd",
                                               "interval": "year"})
    stripe_state.upgrade(engine)
    client = CheckedClient(localstripe.base_url)
    platform = StripeSubscriptionPlatform(
        "stripe", "stripe", lambda: client, engine,
        SourceSettings("le_us", catalog=Catalog(products={"prod_seat": "platform_seat"})),
        OrderSettings(dict(orderkit.SETTINGS.prices), "plan"), lambda: datetime.now(UTC))
    yield Stack(localstripe, client, platform, engine, datetime.now(UTC).date())


def with_card(stack: Stack) -> str:
    receipt = stack.platform.upsert_customer(customer(), ctx("cust-1"))
    stack.stripe.call("POST", "/v1/payment_methods/pm_card_visa/attach",
                      {"customer": receipt.external_id})
    stack.stripe.call("POST", f"/v1/customers/{receipt.external_id}",
                      {"invoice_settings[default_payment_method]": "pm_card_visa"})
    return receipt.external_id


# -- customers ---------------------------------------------------------------------------------

def test_customer_is_created_then_renamed_and_an_older_version_changes_nothing(
        stack: Stack) -> None:
    first = stack.platform.upsert_customer(customer(), ctx("c-1"))
    assert first.external_id.startswith("cus_")
    assert first.references[0].canonical_id == "acct-acme"
    held = stack.stripe.call("GET", f"/v1/customers/{first.external_id}")
    assert held["name"] == "Acme Analytics Customer Ltd"
    assert held["address"]["city"] == "New York" and held["address"]["state"] == "NY"
    assert held["metadata"] == {"finsync_customer_id": "acct-acme",
                                "finsync_customer_version": "1"}

    renamed = stack.platform.upsert_customer(customer("Acme Analytics Inc.", 2), ctx("c-2"))
    assert renamed.external_id == first.external_id  # keyed by the canonical id
    assert stack.stripe.call("GET", f"/v1/customers/{first.external_id}")["name"] == \
        "Acme Analytics Inc."

    stack.platform.upsert_customer(customer(), ctx("c-1-resent"))  # version 1, late
    held = stack.stripe.call("GET", f"/v1/customers/{first.external_id}")
    assert held["name"] == "Acme Analytics Inc."
    assert held["metadata"]["finsync_customer_version"] == "2"
    assert len(stack.stripe.call("GET", "/v1/customers")["data"]) == 1


def test_customer_delivered_twice_under_one_key_writes_once(stack: Stack) -> None:
    first = stack.platform.upsert_customer(customer(), ctx("c-1"))
    writes = len(stack.client.sent)
    assert stack.platform.upsert_customer(customer(), ctx("c-1")) == first
    assert len(stack.client.sent) == writes


def test_eu_customers_vat_id_reaches_stripe(stack: Stack) -> None:
    made = stack.platform.upsert_customer(customer(country="DE"), ctx("c-de"))
    ids = stack.stripe.call("GET", f"/v1/customers/{made.external_id}/tax_ids")["data"]
    assert [(t["type"], t["value"]) for t in ids] == [("eu_vat", "DE123456789")]


# -- orders ------------------------------------------------------------------------------------

def test_new_order_creates_the_subscription_invoiced_at_stripes_price(stack: Stack) -> None:
    cus = with_card(stack)
    receipt = stack.platform.apply_order(stack.order(), ctx("o-1"))
    (sub,) = stack.subscriptions()
    assert receipt.external_id == sub["id"]
    assert receipt.detail["version"] == "1" and receipt.detail["quote_id"] == "q-1"
    assert sub["customer"] == cus and sub["status"] == "active"
    assert sub["metadata"] == {"finsync_contract_id": "ctr-1", "finsync_quote_id": "q-1",
                               "finsync_customer_id": "acct-acme", "finsync_cpq_version": "1"}
    (item,) = sub["items"]["data"]
    assert (item["plan"]["id"], item["quantity"]) == ("price_seat_annual", 500)
    invoice = stack.stripe.call("GET", f"/v1/invoices/{sub['latest_invoice']}")
    assert (invoice["total"], invoice["status"]) == (6_000_000, "paid")  # 500 x 120.00

    read = stack.platform.contract("ctr-1")
    assert read is not None
    assert version_differences(stack.order(), read, cancelled=False) == ()  # the hub's check
    assert (read.id, read.customer_id, read.version) == ("ctr-1", "acct-acme", 1)
    (line,) = read.lines
    assert (line.price_id, line.quantity, str(line.unit_price.amount)) == \
        ("seat_annual", 500, "120.00")
    assert read.refs["stripe"] == sub["id"]


def test_same_order_twice_is_one_subscription_whatever_the_key(stack: Stack) -> None:
    with_card(stack)
    first = stack.platform.apply_order(stack.order(), ctx("o-1"))
    again = stack.platform.apply_order(stack.order(), ctx("o-1-redelivered"))
    assert again.external_id == first.external_id
    # keys expired and the port's links lost: the subscription's metadata still tells
    with stack.engine.begin() as conn:
        conn.execute(delete(stripe_state.links).where(stripe_state.links.c.kind != "customer"))
    writes = len(stack.client.sent)
    late = stack.platform.apply_order(stack.order(), ctx("o-1-much-later"))
    assert late.external_id == first.external_id
    assert len(stack.client.sent) == writes  # read back, nothing written
    assert len(stack.subscriptions()) == 1
    invoices = stack.stripe.call("GET", "/v1/invoices?limit=100")["data"]
    assert len(invoices) == 1


def test_a_new_order_for_a_contract_made_by_another_quote_is_refused(stack: Stack) -> None:
    with_card(stack)
    stack.platform.apply_order(stack.order(), ctx("o-1"))
    other = stack.order(id="q-other")
    with pytest.raises(PermanentError) as refused:
        stack.platform.apply_order(other, ctx("o-other"))
    assert refused.value.exception_class is ExceptionClass.MASTER_DATA_MISMATCH
    assert "which Stripe holds as quote q-1" in str(refused.value)
    assert refused.value.code == "quote_conflict"


def test_order_before_its_customer_is_transient(stack: Stack) -> None:
    with pytest.raises(TransientError, match="not at Stripe yet"):
        stack.platform.apply_order(stack.order(), ctx("o-1"))
    assert stack.client.sent == []


def test_price_stripe_does_not_sell_or_sells_otherwise_is_refused_before_writing(
        stack: Stack) -> None:
    with_card(stack)
    writes = len(stack.client.sent)
    unknown = stack.order()
    unknown = dataclasses.replace(unknown, lines=(dataclasses.replace(
        unknown.lines[0], price_id="price_nobody_sells"),))
    with pytest.raises(PermanentError, match="line ql-seats: Stripe does not sell"):
        stack.platform.apply_order(unknown, ctx("o-unknown"))
    discounted = stack.order()
    discounted = dataclasses.replace(discounted, lines=(dataclasses.replace(
        discounted.lines[0], unit_price=orderkit.usd("100.00")),))
    with pytest.raises(PermanentError, match="sells 12000 USD every 1 year, the order asks "
                                             "10000 USD every 1 year"):
        stack.platform.apply_order(discounted, ctx("o-discounted"))
    assert len(stack.client.sent) == writes and stack.subscriptions() == []


@pytest.mark.parametrize("terms", list(ProrationTerms))
def test_upgrade_localstripe_refuses_proration_behavior_as_a_server_error(
        stack: Stack, terms: ProrationTerms) -> None:
    """localstripe answers 500 to any `proration_behavior` on an update: the port holds
    it transient (Stripe's 5xx), the subscription is unchanged, and the request it sent
    was Stripe's published shape with the terms' behaviour."""
    with_card(stack)
    stack.platform.apply_order(stack.order(), ctx("o-1"))
    seats_only = dataclasses.replace(
        stack.order(800), id="q-2", kind=CommercialKind.AMENDMENT, cpq_version=2,
        proration=terms)
    with pytest.raises(TransientError, match="Stripe 500"):
        stack.platform.apply_order(seats_only, ctx("o-2"))
    method, _path, params = stack.client.sent[-1]
    assert method == "POST"
    assert ("proration_behavior", {"invoice_now": "always_invoice",
                                   "next_invoice": "create_prorations",
                                   "none": "none"}[terms.value]) in params
    assert ("metadata[finsync_quote_id]", "q-2") in params  # with the change, one request
    (sub,) = stack.subscriptions()
    assert sub["items"]["data"][0]["quantity"] == 500


def test_cancellation_today_cancels_now_once(stack: Stack) -> None:
    with_card(stack)
    stack.platform.apply_order(stack.order(), ctx("o-1"))
    cancel = dataclasses.replace(stack.order(), id="q-9", kind=CommercialKind.CANCELLATION,
                                 cpq_version=2, proration=ProrationTerms.NONE)
    receipt = stack.platform.apply_order(cancel, ctx("o-9"))
    assert receipt.detail["status"] == "canceled"
    assert stack.client.sent[-1][:2] == ("DELETE", f"/v1/subscriptions/{receipt.external_id}")
    writes = len(stack.client.sent)
    assert stack.platform.apply_order(cancel, ctx("o-9-again")).external_id == \
        receipt.external_id
    assert len(stack.client.sent) == writes


def test_cancellation_at_the_term_end_is_cancel_at_period_end(stack: Stack) -> None:
    with_card(stack)
    first = stack.platform.apply_order(stack.order(), ctx("o-1"))
    (sub,) = stack.subscriptions()
    end = datetime.fromtimestamp(sub["current_period_end"], UTC).date()
    cancel = dataclasses.replace(stack.order(), id="q-9", kind=CommercialKind.CANCELLATION,
                                 cpq_version=2, effective_date=end)
    stack.platform.apply_order(cancel, ctx("o-9"))
    held = stack.stripe.call("GET", f"/v1/subscriptions/{first.external_id}")
    assert (held["cancel_at_period_end"], held["status"]) == (True, "active")


def test_cancellation_before_today_is_refused_and_the_subscription_kept(stack: Stack) -> None:
    """CPQ cancels today; the order reaches the port tomorrow (the port's clock a day on):
    Stripe cannot date a cancellation back, so nothing is written."""
    with_card(stack)
    first = stack.platform.apply_order(stack.order(), ctx("o-1"))
    tomorrow = StripeSubscriptionPlatform(
        "stripe", "stripe", lambda: stack.client, stack.engine,
        SourceSettings("le_us", catalog=Catalog(products={"prod_seat": "platform_seat"})),
        OrderSettings(dict(orderkit.SETTINGS.prices), "plan"),
        lambda: datetime.now(UTC) + timedelta(days=1))
    cancel = dataclasses.replace(stack.order(), id="q-9", kind=CommercialKind.CANCELLATION,
                                 cpq_version=2, effective_date=stack.today)
    writes = len(stack.client.sent)
    with pytest.raises(PermanentError) as refused:
        tomorrow.apply_order(cancel, ctx("o-9"))
    assert refused.value.exception_class is ExceptionClass.MASTER_DATA_MISMATCH
    assert refused.value.code == "backdated_cancellation"  # type: ignore[attr-defined]
    assert len(stack.client.sent) == writes
    held = stack.stripe.call("GET", f"/v1/subscriptions/{first.external_id}")
    assert (held["status"], held["cancel_at_period_end"]) == ("active", False)


def _renewal(base: SubscriptionOrder, start: date,
             price_id: str, price: str) -> SubscriptionOrder:
    seat = dataclasses.replace(base.lines[0], price_id=price_id, unit_price=orderkit.usd(price),
                               start_date=start, end_date=add_months(start, 12))
    return dataclasses.replace(base, id="q-3", kind=CommercialKind.RENEWAL, cpq_version=2,
                               start_date=start, end_date=seat.end_date,
                               effective_date=start, lines=(seat,))


def test_renewal_approved_early_of_a_term_billed_monthly_is_refused_before_writing(
        stack: Stack) -> None:
    """A year billed monthly at 10.00 a seat-month, renewed with a 7 % uplift (10.70)
    today: localstripe's current period ends in a month, not at the renewal, so an
    update now would bill the rest of this term at 10.70. Refused; nothing written."""
    for plan, cents in (("price_seat_monthly", 1_000), ("price_seat_monthly_2027", 1_070)):
        stack.stripe.call("POST", "/v1/plans", {"id": plan, "product": "prod_seat",
                                                "amount": cents, "currency": "usd",
                                                "interval": "month"})
    with_card(stack)
    monthly = stack.order(billing_frequency=BillingFrequency.MONTHLY)
    monthly = dataclasses.replace(monthly, lines=(dataclasses.replace(
        monthly.lines[0], price_id="price_seat_monthly", unit_price=orderkit.usd("10.00")),))
    first = stack.platform.apply_order(monthly, ctx("o-1"))
    renewal = _renewal(monthly, monthly.end_date, "price_seat_monthly_2027", "10.70")
    writes = len(stack.client.sent)
    with pytest.raises(PermanentError) as refused:
        stack.platform.apply_order(renewal, ctx("o-3"))
    assert refused.value.code == "subscription_schedule"  # type: ignore[attr-defined]
    assert len(stack.client.sent) == writes
    held = stack.stripe.call("GET", f"/v1/subscriptions/{first.external_id}")
    assert held["items"]["data"][0]["plan"]["id"] == "price_seat_monthly"


def test_renewal_at_the_period_end_is_sent(stack: Stack) -> None:
    """Billed annually, the renewal starts where localstripe's current period ends: the
    port sends the update (no proration), which localstripe answers 500 (it takes no
    `proration_behavior`): the request is Stripe's published shape, with the new price."""
    stack.stripe.call("POST", "/v1/plans", {"id": "price_seat_2027", "product": "prod_seat",
                                            "amount": 12_840, "currency": "usd",
                                            "interval": "year"})
    with_card(stack)
    stack.platform.apply_order(stack.order(), ctx("o-1"))
    (sub,) = stack.subscriptions()
    ends = datetime.fromtimestamp(sub["current_period_end"], UTC).date()
    renewal = _renewal(stack.order(), ends, "price_seat_2027", "128.40")
    with pytest.raises(TransientError, match="Stripe 500"):
        stack.platform.apply_order(renewal, ctx("o-3"))
    _method, _path, params = stack.client.sent[-1]
    assert ("proration_behavior", "none") in params
    assert ("items[0][plan]", "price_seat_2027") in params


# -- Stripe's search (localstripe has none): a stub answers it ---------------------------------

class _Search(BaseHTTPRequestHandler):
    """`/v1/customers/search` finding one customer by its metadata (and a decoy whose
    metadata only resembles it), and the customer's update."""

    asked: ClassVar[list[tuple[str, str]]] = []

    def _answer(self, body: dict[str, Any]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps(body).encode())

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        type(self).asked.append(("GET", url.path + "?" + url.query))
        if url.path == "/v1/customers/search":
            self._answer({"object": "search_result", "has_more": False, "data": [
                {"id": "cus_decoy", "created": 1, "metadata": {"finsync_customer_id": "x"}},
                {"id": "cus_found", "created": 2,
                 "metadata": {"finsync_customer_id": "acct-acme"}}]})
        else:
            self._answer({"id": "cus_found", "metadata": {"finsync_customer_version": "1"}})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).asked.append(("POST", self.path))
        self._answer({"id": "cus_found"})

    def log_message(self, *_args: object) -> None:
        pass


def test_customer_whose_link_is_lost_is_found_by_stripes_search(engine: Engine) -> None:
    _Search.asked = []
    server = HTTPServer(("127.0.0.1", 0), _Search)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        stripe_state.upgrade(engine)
        client = CheckedClient(f"http://127.0.0.1:{server.server_port}")
        platform = StripeSubscriptionPlatform(
            "stripe", "stripe", lambda: client, engine, SourceSettings("le_us"),
            OrderSettings(), lambda: datetime.now(UTC))
        receipt = platform.upsert_customer(customer("Acme Renamed", 2), ctx("c-2"))
    finally:
        server.shutdown()
        server.server_close()
    assert receipt.external_id == "cus_found"  # the decoy's metadata is another id
    query = urllib.parse.parse_qs(_Search.asked[0][1].split("?", 1)[1])["query"]
    assert query == ["metadata['finsync_customer_id']:'acct-acme'"]
    assert ("POST", "/v1/customers/cus_found") in _Search.asked  # updated, not created
    assert not any(a == ("POST", "/v1/customers") for a in _Search.asked)
