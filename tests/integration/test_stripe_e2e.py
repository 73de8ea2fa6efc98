"""End to end against a real localstripe: localstripe signs and delivers webhooks to a running
finsync API; the raw events are stored, mapped and accepted, the poller brings what webhooks
do not carry in order (customers, subscriptions), and the ledger posts the invoice.

localstripe speaks the older API shape (Plans, `invoice.subscription`); the current shape is
covered by tests/unit/stripe with hand-written payloads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import Engine, select

from finsync.api.app import create_app
from finsync.bootstrap import build_hub, build_ledger_service, build_webhooks
from finsync.config import FinsyncConfig
from finsync.connectors.stripe.signature import header_for
from finsync.domain.events import EventType
from finsync.domain.status import DeliveryStatus, EventStatus, RawStatus
from finsync.hub.service import Hub
from finsync.storage.schema import events, raw_events
from tests.stripekit import ApiServer, Localstripe, stripe_config, wait_for

SECRET, OLD_SECRET = "whsec_finsync_current", "whsec_finsync_previous"


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINSYNC_TEST_WHSEC", SECRET)
    monkeypatch.setenv("FINSYNC_TEST_WHSEC_OLD", OLD_SECRET)
    monkeypatch.setenv("FINSYNC_TEST_STRIPE_KEY", "sk_test_finsync")


@pytest.fixture
def config(db_url: str, localstripe: Localstripe, secrets: None) -> FinsyncConfig:
    return stripe_config(db_url, localstripe.base_url, poll_on_run=True)


@pytest.fixture
def served(config: FinsyncConfig, engine: Engine) -> Iterator[tuple[Hub, ApiServer]]:
    hub = build_hub(config, engine=engine)
    with ApiServer(create_app(hub, webhooks=build_webhooks(config, engine))) as server:
        yield hub, server


def webhook_count(hub: Hub) -> int:
    with hub.engine.connect() as conn:
        return len(conn.execute(select(raw_events.c.id).where(
            raw_events.c.headers.contains("stripe-signature"))).all())


def posted_invoice_total(config: FinsyncConfig, engine: Engine) -> dict[str, Decimal]:
    """Debits and credits of the ledger's accounts by type, today."""
    service = build_ledger_service(config, engine)
    rows = service.trial_balance("le_us", datetime.now(UTC).date())
    by_type: dict[str, Decimal] = {}
    for row in rows:
        by_type[row.type] = by_type.get(row.type, Decimal(0)) + row.balance.amount
    return by_type


def accepted_types(hub: Hub) -> list[str]:
    with hub.engine.connect() as conn:
        rows = conn.execute(select(events.c.type)
                            .where(events.c.status == EventStatus.ACCEPTED)).all()
    return sorted(str(r[0]) for r in rows)


def test_signed_webhooks_reach_the_ledger_once(
        localstripe: Localstripe, served: tuple[Hub, ApiServer], config: FinsyncConfig,
        engine: Engine) -> None:
    hub, server = served
    localstripe.reset(f"{server.url}/v1/webhooks/stripe/stripe", SECRET)
    localstripe.subscribe(3, 1_250)  # 3 seats x 12.50 USD
    expected = len(localstripe.events())
    wait_for(lambda: webhook_count(hub) >= expected, what="localstripe's webhooks")
    # localstripe sends no invoice.finalized: the payment (payment_intent.succeeded) may
    # reach the ledger before its invoice (invoice.payment_succeeded), and waits for it.
    hub.run_until_settled(10)
    status = hub.status()
    assert hub.exceptions() == []  # nothing left for finance (a wait resolves itself)
    assert accepted_types(hub) == [EventType.CONTRACT_CREATED, EventType.CUSTOMER_UPSERTED,
                                   EventType.INVOICE_ISSUED, EventType.PAYMENT_APPLIED]
    assert status["deliveries"] == {DeliveryStatus.DONE: 2}  # the invoice and its payment
    balances = posted_invoice_total(config, engine)
    assert balances["asset"] == Decimal("37.50")  # cash; receivable settled
    assert sum(balances.values()) == 0

    # Every webhook is sent again by hand (a retrying sender): nothing changes but the count.
    duplicates = status["duplicates_ignored"]
    with hub.engine.connect() as conn:
        stored = conn.execute(select(raw_events.c.body, raw_events.c.headers).where(
            raw_events.c.headers.contains("stripe-signature"))).all()
    for body, headers in stored:
        code, answer = server.post("/v1/webhooks/stripe/stripe", body,
                                   {"Stripe-Signature": json.loads(headers)["stripe-signature"]})
        assert (code, answer["received"]) == (200, True)
    hub.run_until_settled(10)
    after = hub.status()
    assert after["deliveries"] == {DeliveryStatus.DONE: 2} and hub.exceptions() == []
    assert after["exceptions"] == status["exceptions"]  # no new exception
    assert after["duplicates_ignored"] > duplicates
    assert posted_invoice_total(config, engine) == balances


def _signed(body: bytes, secret: str, at: int | None = None) -> dict[str, str]:
    stamp = int(datetime.now(UTC).timestamp()) if at is None else at
    return {"Stripe-Signature": header_for(secret, stamp, body)}


def test_refused_webhooks_are_400_and_recorded_and_rotation_accepts_the_old_secret(
        served: tuple[Hub, ApiServer]) -> None:
    hub, server = served
    body = json.dumps({"id": "evt_forged", "object": "event", "type": "invoice.paid",
                       "created": 1, "data": {"object": {}}}).encode()
    now = int(datetime.now(UTC).timestamp())
    refusals = {
        "signature_missing": {},
        "signature_malformed": {"Stripe-Signature": "t=now,v1=abc"},
        "signature_mismatch": _signed(body, "whsec_attacker"),
        "timestamp_outside_tolerance": _signed(body, SECRET, now - 3_600),
    }
    for code, headers in refusals.items():
        status, answer = server.post("/v1/webhooks/stripe/stripe", body, headers)
        assert (status, answer["error"]["code"]) == (400, code)
    recorded = hub.exceptions(exception_class="ownership_violation")
    assert sorted(e["detail"] for e in recorded) == sorted(refusals)
    assert hub.status()["raw_events"] == {RawStatus.REJECTED: 4}

    status, answer = server.post("/v1/webhooks/stripe/stripe", body, _signed(body, OLD_SECRET))
    assert (status, answer["received"]) == (200, True)
    status, _ = server.post("/v1/webhooks/stripe/other", body, _signed(body, SECRET))
    assert status == 404
