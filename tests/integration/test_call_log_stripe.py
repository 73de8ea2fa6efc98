"""The call log against a real localstripe: each Stripe request with its status and a
redacted answer (no name, no email, no API key); an object fetched for an event is filed
under the event's commercial thread, beside the ledger calls the hub makes for it."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from finsync.bootstrap import build_hub, build_stripe_poller
from finsync.config import FinsyncConfig
from finsync.connectors.stripe.client import ClientSettings, StripeClient
from finsync.connectors.stripe.poller import Poller
from finsync.connectors.stripe.state import PollState
from finsync.domain.call import Call
from finsync.domain.clock import utc_now
from finsync.domain.errors import PermanentError
from finsync.storage.raw_log import RawIn
from tests.stripekit import API_KEY, Localstripe, TruncatingSource, stripe_config

PLANTED = ("Acme Analytics", "ap@acme.example", API_KEY)


class Calls(list[Call]):
    def record(self, call: Call) -> None:
        self.append(call)


@pytest.fixture
def config(db_url: str, localstripe: Localstripe,
           monkeypatch: pytest.MonkeyPatch) -> FinsyncConfig:
    monkeypatch.setenv("FINSYNC_TEST_WHSEC", "whsec_calls")
    monkeypatch.setenv("FINSYNC_TEST_STRIPE_KEY", API_KEY)
    return stripe_config(db_url, localstripe.base_url)


def test_each_request_is_logged_with_its_status_and_a_redacted_answer(
        localstripe: Localstripe) -> None:
    localstripe.reset(None)
    sub = localstripe.subscribe(3, 1_000)
    calls = Calls()
    stripe = StripeClient("stripe", ClientSettings(API_KEY, localstripe.base_url, timeout_s=5),
                          recorder=calls)
    invoice = stripe.fetch("invoice", sub["latest_invoice"])
    with pytest.raises(PermanentError):
        stripe.fetch("customer", "cus_missing")
    found, missing = calls[0], calls[-1]
    assert (found.system, found.channel, found.method) == ("stripe", "http", "GET")
    assert found.endpoint == f"/v1/invoices/{invoice['id']}"
    assert found.status == "200" and found.error is None
    assert found.response_bytes and found.duration_us > 0
    assert f'"id":"{invoice["id"]}"' in (found.response_excerpt or "")
    assert (missing.endpoint, missing.status) == ("/v1/customers/cus_missing", "404")
    assert all(planted not in repr(c) for c in calls for planted in PLANTED)


def test_a_fetch_for_an_event_is_listed_with_the_ledger_calls_of_its_thread(
        localstripe: Localstripe, config: FinsyncConfig, engine: Engine) -> None:
    localstripe.reset(None)
    sub = localstripe.subscribe(2, 4_000)
    hub = build_hub(config, engine=engine)
    client = build_stripe_poller(config, engine, "stripe")._client
    assert isinstance(client, StripeClient)
    Poller(TruncatingSource(client), PollState(engine, "stripe", utc_now)).poll(
        lambda bodies: hub.intake.store([RawIn("stripe", b, {}) for b in bodies]))
    hub.run_until_idle()
    thread = f"stripe:{sub['id']}"
    calls = hub.calls(thread)
    fetches = [c for c in calls if c.system == "stripe"]
    assert [c.endpoint.split("?")[0] for c in fetches][:1] == [
        f"/v1/invoices/{sub['latest_invoice']}"]
    assert all(c.status == "200" and c.idempotency_keys == () for c in fetches)
    ledger = [c for c in calls if c.system == "ledger"]
    assert ledger and all(c.channel == "port" and c.status == "ok" for c in ledger)
    assert all(k.endswith(":ledger") for c in ledger for k in c.idempotency_keys)
    assert all(planted not in repr(calls) for planted in PLANTED)
