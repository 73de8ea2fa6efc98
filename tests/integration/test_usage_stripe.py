"""A usage source that takes Stripe's meter events (current shape, from Stripe's examples):
stored once by Stripe's `identifier`, read through the account's meters and metered
subscription items, refused item by item with their codes, totalled per subscription,
product and day like any meter event; Stripe unreachable refuses the batch whole."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from finsync.api.app import create_app
from finsync.connectors.stripe.meter_source import StripeMeters
from finsync.domain.errors import ExceptionClass, TransientError
from finsync.domain.limits import InputLimits
from finsync.hub.usage import UsageIntake
from finsync.storage import exception_log, usage_log
from finsync.storage.db import reading
from finsync.storage.migrate import upgrade
from tests import authkit
from tests.hubkit import make_hub
from tests.integration.test_usage import FakeUsagePort
from tests.stripeshapes.meters import meter_event
from tests.unit.stripe.test_meter_source import Account

NOW = datetime(2026, 12, 10, 12, tzinfo=UTC)
DAY_1 = int(datetime(2026, 12, 1, 9, tzinfo=UTC).timestamp())
DAY_2 = int(datetime(2026, 12, 2, 9, tzinfo=UTC).timestamp())


class Unreachable(Account):
    def list_all(self, path: str, params: list[tuple[str, str]]) -> list[dict[str, object]]:
        raise TransientError(f"Stripe unreachable at {path}")


def _usage(engine: Engine, account: Account, port: FakeUsagePort | None = None) -> UsageIntake:
    upgrade(engine)
    meters = StripeMeters(account, lambda: NOW)
    return UsageIntake(engine, lambda: NOW, port, ["stripe_meters"],
                       lambda _s: InputLimits(), settle_s=0,
                       translators={"stripe_meters": meters.translator})


def test_stripe_meter_events_become_usage_per_subscription_product_and_day(
        engine: Engine) -> None:
    port = FakeUsagePort()
    usage = _usage(engine, Account(), port)
    batch = [meter_event("req_1", "900000", timestamp=DAY_1),
             meter_event("req_2", "100000", timestamp=DAY_1 + 60),
             meter_event("req_3", "2000000", timestamp=DAY_2),
             meter_event("req_1", "900000", timestamp=DAY_1),  # Stripe's client retried
             meter_event("req_4", "12.5", timestamp=DAY_2),
             meter_event("req_5", "1", event_name="tokens", timestamp=DAY_2)]
    receipt = usage.receive("stripe_meters", json.dumps(batch).encode())
    assert (receipt.stored, receipt.duplicates) == (3, 1)
    assert [(r.index, r.event_id, r.code) for r in receipt.refused] == [
        (4, "req_4", "invalid_quantity"), (5, "req_5", "unknown_meter")]
    # the same identifier with another value is refused, naming both; the first stands
    changed = usage.load("stripe_meters", [json.dumps(meter_event("req_3", "7",
                                                                  timestamp=DAY_2))])
    assert [r.code for r in changed.refused] == ["duplicate_event"]

    run = usage.aggregate(date(2026, 12, 9))
    assert (run.events, run.totals) == (3, 2)
    usage.hand_over()
    got = {(r.contract_id, r.product_id, r.occurred_on): r.quantity for r in port.recorded}
    # day 1: 900,000 + 100,000; day 2: 2,000,000 (the changed resend did not count)
    assert got == {("sub_usage", "prod_usage_overage", date(2026, 12, 1)): 1_000_000,
                   ("sub_usage", "prod_usage_overage", date(2026, 12, 2)): 2_000_000}
    with reading(engine) as conn:
        classes = [r["class"] for r in exception_log.listing(
            conn, status=None, exception_class=None, limit=10)]
    assert classes.count(ExceptionClass.MAPPING_ERROR) == 3  # one per code refused


def test_stripe_unreachable_refuses_the_batch_and_stores_nothing(engine: Engine) -> None:
    usage = _usage(engine, Unreachable())
    with pytest.raises(TransientError):
        usage.receive("stripe_meters", json.dumps([meter_event("req_1", "5")]).encode())
    with reading(engine) as conn:
        assert usage_log.counts(conn).get("events", 0) == 0


def test_stripe_meter_events_over_http(engine: Engine, tmp_path: Path) -> None:
    hub = make_hub(engine, tmp_path)
    batch = json.dumps([meter_event("req_h1", "40", timestamp=DAY_1),
                        meter_event("req_h2", "1.5", timestamp=DAY_1)])
    with authkit.client(create_app(hub, usage=_usage(engine, Account())), engine) as client:
        taken = client.post("/v1/usage/stripe_meters/events", content=batch)
    assert taken.status_code == 202 and taken.json()["stored"] == 1
    assert [r["code"] for r in taken.json()["refused"]] == ["invalid_quantity"]
    with authkit.client(create_app(hub, usage=_usage(engine, Unreachable())), engine) as client:
        down = client.post("/v1/usage/stripe_meters/events", content=batch)
    assert down.status_code == 503  # send it again: nothing of it was stored
