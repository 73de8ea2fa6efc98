"""Billing's outbox reaches a real hub: in order, marked published only after the hub
committed, re-sent after a crash and then counted by the hub as duplicates."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update

from finsync.connectors.embedded.billing import OutboxPublisher, Send
from finsync.domain.invoice import UsageRecord
from finsync.hub.service import Hub
from finsync.storage.raw_log import RawIn
from finsync.systems.billing import tables
from finsync.systems.billing.handler import RecordUsage, RunClock
from finsync.systems.billing.service import BillingService
from tests.hubkit import make_hub
from tests.unit.billing.servicekit import REGISTER, UPGRADE, create, envelopes, overage, seats
from tests.unit.billing.servicekit import service as billing_service


class SendFailedError(Exception):
    pass


def _sender(hub: Hub, sent: list[bytes]) -> Send:
    def send(bodies: Sequence[bytes]) -> int:
        sent.extend(bodies)
        return hub.intake.store([RawIn("canonical", body, {}) for body in bodies])
    return send


@pytest.fixture
def billing(engine: Engine) -> BillingService:
    service = billing_service(engine)
    for command in (REGISTER, create(seats(), overage()), UPGRADE,
                    RecordUsage(UsageRecord("use_1", "con_acme_2026", "prod_usage_overage",
                                            1_500_000, date(2026, 5, 20))),
                    RunClock(date(2026, 7, 1))):
        service.execute(command)
    return service


def test_publish_sends_in_outbox_order_and_marks_published(engine: Engine,
                                                            billing: BillingService,
                                                            tmp_path: Path) -> None:
    hub, sent = make_hub(engine, tmp_path / "exports"), list[bytes]()
    published = OutboxPublisher(billing, batch_size=3).publish(_sender(hub, sent))
    assert published == len(envelopes(engine)) == len(sent)
    assert [b.decode() for b in sent] == _texts(engine)
    assert billing.outbox_counts() == {"published": published, "pending": 0}
    assert OutboxPublisher(billing).publish(_sender(hub, [])) == 0


def _texts(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(tables.outbox.c.envelope)
                                 .order_by(tables.outbox.c.seq)).scalars())


def test_hub_accepts_every_billing_event_without_exception(engine: Engine,
                                                           billing: BillingService,
                                                           tmp_path: Path) -> None:
    hub = make_hub(engine, tmp_path / "exports")
    sent = OutboxPublisher(billing).publish(_sender(hub, []))
    hub.run_until_idle()
    status = hub.status()
    assert status["raw_events"] == {"mapped": sent}
    assert status["events"] == {"accepted": sent}
    assert status["deliveries"] == {"done": 3}  # the three invoices, to the ledger
    assert status["duplicates_ignored"] == 0
    assert hub.exceptions() == []


def test_resend_after_a_crash_is_counted_as_duplicates(engine: Engine, billing: BillingService,
                                                       tmp_path: Path) -> None:
    hub = make_hub(engine, tmp_path / "exports")
    sent = OutboxPublisher(billing).publish(_sender(hub, []))
    hub.run_until_idle()
    with engine.begin() as conn:  # the hub committed, the mark was lost in a crash
        conn.execute(update(tables.outbox).values(published=False, published_at=None))
    again = OutboxPublisher(billing).publish(_sender(hub, []))
    hub.run_until_idle()
    assert again == sent
    assert hub.status()["duplicates_ignored"] == sent
    assert hub.exceptions() == []


def test_failed_send_marks_nothing_and_the_next_publish_sends_it(engine: Engine,
                                                                 billing: BillingService,
                                                                 tmp_path: Path) -> None:
    def broken(bodies: Sequence[bytes]) -> None:
        raise SendFailedError("hub unreachable")

    pending = billing.outbox_counts()["pending"]
    with pytest.raises(SendFailedError):
        OutboxPublisher(billing).publish(broken)
    assert billing.outbox_counts() == {"published": 0, "pending": pending}
    hub = make_hub(engine, tmp_path / "exports")
    assert OutboxPublisher(billing).publish(_sender(hub, [])) == pending


def test_publisher_refuses_a_zero_batch(billing: BillingService) -> None:
    with pytest.raises(ValueError, match="positive"):
        OutboxPublisher(billing, batch_size=0)
