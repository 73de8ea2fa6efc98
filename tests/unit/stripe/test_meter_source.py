"""The Stripe usage source reads an account's meters and a customer's subscriptions when it
needs them: kept a while, read again on an unknown name at most once a batch.

`Account` below is an account's objects served as Stripe's list calls answer them (the
client's paging and errors are tests/integration/test_stripe_client.py's); it counts the
reads, which is what these tests are about."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from finsync.connectors.stripe.meter_source import StripeMeters
from finsync.domain.errors import MappingError
from finsync.domain.meter import Translate
from tests.stripeshapes.meters import meter, meter_event, metered_price, subscription


class Account:
    """One Stripe account's meters and subscriptions, read through the calls the usage
    source makes (`list_all`, `fetch`)."""

    def __init__(self) -> None:
        self.meters = [meter()]
        self.subscriptions = [subscription("sub_usage", [("si_calls", metered_price())])]
        self.reads: list[str] = []

    def list_all(self, path: str, params: list[tuple[str, str]]) -> list[dict[str, Any]]:
        self.reads.append(path)
        if path == "/v1/billing/meters":
            return list(self.meters)
        customer = dict(params).get("customer")
        return [s for s in self.subscriptions if customer in (None, s["customer"])]

    def fetch(self, object_type: str, external_id: str) -> Mapping[str, object]:
        self.reads.append(f"{object_type}/{external_id}")
        found = next(s for s in self.subscriptions if s["id"] == external_id)
        return {**found, "items": {**found["items"], "has_more": False}}


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def account() -> Account:
    return Account()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def run(translate: Translate, *events: dict[str, Any]) -> list[object]:
    out: list[object] = []
    for event in events:
        try:
            out.append(translate(event))
        except MappingError as exc:
            out.append(exc.code)
    return out


def test_a_batch_reads_the_meters_and_the_customer_once(account: Account, clock: Clock) -> None:
    source = StripeMeters(account, clock)
    items = run(source.translator(), *(meter_event(f"e{n}", "10") for n in range(100)))
    assert all(isinstance(i, dict) and i["subscription"] == "sub_usage" for i in items)
    assert account.reads == ["/v1/billing/meters", "/v1/subscriptions"]


def test_what_was_read_is_kept_for_keep_s_then_read_again(account: Account,
                                                          clock: Clock) -> None:
    source = StripeMeters(account, clock, keep_s=300)
    run(source.translator(), meter_event("e1", "1"))
    clock.now += timedelta(seconds=299)
    run(source.translator(), meter_event("e2", "1"))
    assert len(account.reads) == 2
    clock.now += timedelta(seconds=1)
    run(source.translator(), meter_event("e3", "1"))
    assert account.reads[2:] == ["/v1/billing/meters", "/v1/subscriptions"]


def test_unknown_names_read_the_meters_again_once_a_batch(account: Account,
                                                          clock: Clock) -> None:
    source = StripeMeters(account, clock)
    run(source.translator(), meter_event("e1", "1"))
    account.reads.clear()
    got = run(source.translator(), *(meter_event(f"t{n}", "1", event_name="tokens")
                                     for n in range(20)))
    assert got == ["unknown_meter"] * 20 and account.reads == ["/v1/billing/meters"]
    # a meter made at Stripe since is found by the next batch, read again on the miss
    account.meters.append(meter("meter_tokens", "tokens"))
    account.subscriptions[0]["items"]["data"].append(
        {**account.subscriptions[0]["items"]["data"][0], "id": "si_tokens",
         "price": metered_price("price_tokens", "prod_tokens", "meter_tokens")})
    got = run(source.translator(), meter_event("t9", "4", event_name="tokens"))
    assert isinstance(got[0], dict) and got[0]["product"] == "prod_tokens"


def test_a_new_subscription_is_found_when_its_customer_misses(account: Account,
                                                              clock: Clock) -> None:
    source = StripeMeters(account, clock)
    got = run(source.translator(), meter_event("n1", "1", customer="cus_new"),
              meter_event("n2", "1", customer="cus_new"))
    assert got == ["no_subscription_item"] * 2
    assert account.reads.count("/v1/subscriptions") == 1  # read this batch: not read again
    account.subscriptions.append(subscription("sub_new", [("si_new", metered_price())],
                                              customer="cus_new"))
    got = run(source.translator(), meter_event("n3", "1", customer="cus_new"))
    assert isinstance(got[0], dict) and got[0]["subscription"] == "sub_new"


def test_a_subscription_with_a_partial_item_page_is_fetched_whole(account: Account,
                                                                  clock: Clock) -> None:
    account.subscriptions[0]["items"]["has_more"] = True
    got = run(StripeMeters(account, clock).translator(), meter_event("p1", "1"))
    assert isinstance(got[0], dict) and "subscription/sub_usage" in account.reads


def test_a_batch_of_many_new_customers_costs_a_bounded_number_of_reads(
        account: Account, clock: Clock) -> None:
    # 500 customers no one has seen: 3 read one by one, then the whole account in one
    # listing (the client pages it), then no more reads for the other 497
    account.subscriptions += [subscription(f"sub_{n}", [(f"si_{n}", metered_price())],
                                           customer=f"cus_n{n}") for n in range(500)]
    source = StripeMeters(account, clock, customer_reads_max=3)
    got = run(source.translator(), *(meter_event(f"m{n}", "1", customer=f"cus_n{n}")
                                     for n in range(500)))
    assert [g["subscription"] for g in got if isinstance(g, dict)] == [
        f"sub_{n}" for n in range(500)]
    assert account.reads == ["/v1/billing/meters", *["/v1/subscriptions"] * 4]
    # a customer Stripe does not know is read once in a batch, and refused
    account.reads.clear()
    assert run(source.translator(), meter_event("x", "1", customer="cus_unknown"),
               meter_event("y", "1", customer="cus_unknown")) == ["no_subscription_item"] * 2
    assert account.reads == ["/v1/subscriptions"]


def test_what_was_kept_too_long_is_forgotten(account: Account, clock: Clock) -> None:
    source = StripeMeters(account, clock, keep_s=300)
    run(source.translator(), *(meter_event(f"k{n}", "1", customer=f"cus_{n}")
                               for n in range(5)))
    clock.now += timedelta(seconds=300)
    source.translator()
    assert source._customers == {}  # nothing kept past keep_s: memory stays bounded
