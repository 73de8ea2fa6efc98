"""Catch-up from `/v1/events` after missed webhooks, fetch-on-event, out-of-order arrival,
and `finsync stripe poll`, against a real localstripe (older API shape) where it can produce
the events, with current-shape deliveries written by hand where it cannot (subscription
updates)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from finsync.bootstrap import build_hub, build_stripe_poller, build_webhooks
from finsync.cli.main import app
from finsync.config import FinsyncConfig
from finsync.connectors.stripe.poller import Poller
from finsync.connectors.stripe.signature import header_for
from finsync.connectors.stripe.state import PollState
from finsync.domain.clock import utc_now
from finsync.domain.events import EventType, InvoiceIssued
from finsync.domain.status import DeliveryStatus, EventStatus
from finsync.hub.service import Hub
from finsync.storage import event_log
from finsync.storage.raw_log import RawIn
from finsync.storage.schema import events
from tests.clikit import auth_section
from tests.stripekit import Localstripe, TruncatingSource, stripe_config
from tests.unit.stripe.payloads import DAY, T0, delivered, event, price, subscription

SECRET = "whsec_catchup"


@pytest.fixture
def config(db_url: str, localstripe: Localstripe,
           monkeypatch: pytest.MonkeyPatch) -> FinsyncConfig:
    monkeypatch.setenv("FINSYNC_TEST_WHSEC", SECRET)
    monkeypatch.setenv("FINSYNC_TEST_STRIPE_KEY", "sk_test_finsync")
    return stripe_config(db_url, localstripe.base_url, secret_envs=("FINSYNC_TEST_WHSEC",))


def send_to(hub: Hub) -> Any:
    return lambda bodies: hub.intake.store([RawIn("stripe", b, {}) for b in bodies])


def accepted(hub: Hub) -> list[tuple[str, str, int | None]]:
    with hub.engine.connect() as conn:
        rows = conn.execute(select(events.c.type, events.c.aggregate_id,
                                   events.c.aggregate_version)
                            .where(events.c.status == EventStatus.ACCEPTED)
                            .order_by(events.c.position)).all()
    return [(str(t), str(i), v) for t, i, v in rows]


def test_missed_webhooks_are_caught_up_once(localstripe: Localstripe, config: FinsyncConfig,
                                            engine: Engine) -> None:
    localstripe.reset(None)  # every webhook goes nowhere
    localstripe.subscribe(3, 1_250)
    listed = localstripe.events()
    hub = build_hub(config, engine=engine)
    poller = build_stripe_poller(config, engine, "stripe")
    assert poller.poll(send_to(hub)).events == len(listed)
    # localstripe sends no invoice.finalized: the payment (payment_intent.succeeded) may
    # reach the ledger before its invoice (invoice.payment_succeeded), and waits for it.
    hub.run_until_settled(10)
    assert {t for t, _, _ in accepted(hub)} == {EventType.CUSTOMER_UPSERTED,
                                                EventType.CONTRACT_CREATED,
                                                EventType.INVOICE_ISSUED,
                                                EventType.PAYMENT_APPLIED}
    assert hub.status()["deliveries"] == {DeliveryStatus.DONE: 2}

    # A webhook that arrives late is the same Stripe event: a duplicate, applied once.
    late = json.dumps(next(e for e in listed if e["type"] == "invoice.payment_succeeded"))
    body = late.encode()
    intake = build_webhooks(config, engine)["stripe"]
    stamp = int(datetime.now(UTC).timestamp())
    intake.receive(body, {"Stripe-Signature": header_for(SECRET, stamp, body)})
    before = hub.status()["duplicates_ignored"]
    hub.run_until_idle()
    # the invoice only: its payment comes with its PaymentIntent's event (payment_intent.
    # succeeded), never with the invoice's
    assert hub.status()["duplicates_ignored"] == before + 1
    assert poller.poll(send_to(hub)).events == 0  # the cursor is past everything


def test_partial_invoices_are_fetched_before_mapping(localstripe: Localstripe,
                                                     config: FinsyncConfig,
                                                     engine: Engine) -> None:
    localstripe.reset(None)
    sub = localstripe.subscribe(2, 4_000)
    hub = build_hub(config, engine=engine)
    real = build_stripe_poller(config, engine, "stripe")._client
    source = TruncatingSource(real)
    Poller(source, PollState(engine, "stripe", utc_now)).poll(send_to(hub))
    assert ("invoice", sub["latest_invoice"]) in source.fetched
    hub.run_until_idle()
    assert hub.status()["exceptions"] == {}
    invoices = [i for t, i, _ in accepted(hub) if t == EventType.INVOICE_ISSUED]
    assert invoices == [sub["latest_invoice"]]


def test_a_taxed_invoice_is_mapped_with_the_tax_rate_fetched_beside_it(
        localstripe: Localstripe, config: FinsyncConfig, engine: Engine) -> None:
    """localstripe's tax rates name no country: the poller fetches the rate the invoice
    names (after the whole invoice, its lines cut to a partial page), and the invoice keeps
    its tax whole, without a breakdown (docs/stripe.md, "Tax")."""
    localstripe.reset(None)
    rate = localstripe.call("POST", "/v1/tax_rates", {
        "display_name": "Sales tax", "inclusive": "false", "percentage": "10"})
    customer = localstripe.call("POST", "/v1/customers", {
        "name": "Acme Analytics", "payment_method": "pm_card_visa",
        "invoice_settings[default_payment_method]": "pm_card_visa"})
    localstripe.call("POST", "/v1/products", {"id": "prod_taxed", "name": "Seats"})
    localstripe.call("POST", "/v1/plans", {"id": "plan_taxed", "product": "prod_taxed",
                                           "amount": 1_250, "currency": "usd",
                                           "interval": "month"})
    sub = localstripe.call("POST", "/v1/subscriptions", {
        "customer": customer["id"], "items[0][plan]": "plan_taxed", "items[0][quantity]": 3,
        "items[0][tax_rates][0]": rate["id"]})  # on the item: its line's tax_amounts
    hub = build_hub(config, engine=engine)
    source = TruncatingSource(build_stripe_poller(config, engine, "stripe")._client)
    Poller(source, PollState(engine, "stripe", utc_now)).poll(send_to(hub))
    assert ("tax_rate", rate["id"]) in source.fetched
    hub.run_until_settled(10)
    assert hub.status()["exceptions"] == {}
    with hub.engine.connect() as conn:
        (event_id,) = conn.execute(select(events.c.event_id).where(
            events.c.type == EventType.INVOICE_ISSUED,
            events.c.status == EventStatus.ACCEPTED)).scalars().all()
        stored = event_log.get(conn, event_id)
    assert stored is not None and isinstance(stored.event, InvoiceIssued)
    invoice = stored.event.invoice
    assert invoice.id == sub["latest_invoice"]
    # 3 x 12.50 = 37.50, 10 % on top: 3.75 of tax, no jurisdiction to write
    assert (str(invoice.tax_total.amount), [li.taxes for li in invoice.lines]) == ("3.75",
                                                                                  [()])


def test_out_of_order_subscription_versions_are_sequenced_by_the_hub(
        config: FinsyncConfig, engine: Engine) -> None:
    # current shape, written by hand: localstripe never sends customer.subscription.updated
    v1 = subscription([("si_1", price("price_seats", "prod_seats", 1250), 500)])
    v2 = subscription([("si_1", price("price_seats", "prod_seats", 1250), 800),
                       ("si_2", price("price_analytics", "prod_analytics", 40_000), 1)])
    created = event("customer.subscription.created", v1, evt="evt_a")
    updated = event("customer.subscription.updated", v2, evt="evt_b", created=T0 + 10 * DAY,
                    previous={"items": {"data": [{"id": "si_1", "quantity": 500}]}})
    hub = build_hub(config, engine=engine)
    send_to(hub)([delivered(updated, version=2)])
    hub.run_until_idle()
    assert accepted(hub) == [] and hub.status()["events"] == {EventStatus.PARKED: 1}
    send_to(hub)([delivered(created, version=1), delivered(created, version=1)])
    hub.run_until_idle()
    assert sorted(accepted(hub), key=lambda row: row[2] or 0) == [
        (EventType.CONTRACT_CREATED, "sub_1", 1), (EventType.CONTRACT_AMENDED, "sub_1", 2)]
    assert hub.status()["duplicates_ignored"] == 1


def test_poll_cli_stores_and_runs(localstripe: Localstripe, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINSYNC_TEST_STRIPE_KEY", "sk_test_finsync")
    monkeypatch.setenv("FINSYNC_TEST_WHSEC", SECRET)
    db_url = f"sqlite:///{tmp_path / 'cli.db'}"
    localstripe.reset(None)
    localstripe.subscribe(1, 9_900)
    toml = tmp_path / "finsync.toml"
    toml.write_text(f'''
[hub]
database_url = "{db_url}"
[ownership]
customer = "stripe"
catalog = "stripe"
subscription = "stripe"
payments = "stripe"
usage = "stripe"
tax = "tax"
ledger = "ledger"
revenue = "revrec"
[sources]
stripe = "stripe"
[stripe.stripe]
legal_entity = "le_us"
base_url = "{localstripe.base_url}"
api_key_env = "FINSYNC_TEST_STRIPE_KEY"
poll_on_run = false
[[stripe.stripe.webhook_secrets]]
env = "FINSYNC_TEST_WHSEC"
''' + auth_section())
    result = CliRunner().invoke(app, ["stripe", "poll", "--run", "--json", "-c", str(toml)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["poll"]["events"] == len(localstripe.events())
    assert data["run"]["outcomes"]["accepted"] == 4
    again = CliRunner().invoke(app, ["stripe", "poll", "--json", "-c", str(toml)])
    assert json.loads(again.output)["poll"]["events"] == 0
    missing = CliRunner().invoke(app, ["stripe", "poll", "--source", "nope", "--json",
                                       "-c", str(toml)])
    assert missing.exit_code != 0 and json.loads(missing.output)["error"]["code"] \
        == "config_error"
