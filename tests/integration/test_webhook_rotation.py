"""Webhook secret rotation: the old secret verifies until its not_after, the new throughout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from finsync.bootstrap import build_webhooks
from finsync.config import parse_config
from finsync.connectors.stripe.signature import header_for
from finsync.domain.errors import SignatureError
from finsync.domain.events import BusinessDomain
from tests.hubkit import Clock

CUTOVER = datetime(2026, 12, 7, tzinfo=UTC)
OLD, NEW = "whsec_rotation_old_0000", "whsec_rotation_new_0000"
BODY = b'{"id": "evt_r", "object": "event", "type": "customer.created"}'


def test_the_old_secret_works_inside_the_overlap_and_fails_after_it(
        engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_ROTATION_NEW", NEW)
    (tmp_path / "old").write_text(OLD + "\n")
    config = parse_config({
        "ownership": {d.value: "stripe" for d in BusinessDomain},
        "sources": {"stripe": "stripe"},
        "stripe": {"stripe": {"legal_entity": "le_us", "webhook_secrets": [
            {"env": "T_ROTATION_NEW"}, {"file": "old", "not_after": CUTOVER}]}},
    }, tmp_path)
    clock = Clock(CUTOVER - timedelta(hours=1))
    intake = build_webhooks(config, engine, clock)["stripe"]

    def send(secret: str) -> int:
        stamp = int(clock().timestamp())
        return intake.receive(BODY, {"Stripe-Signature": header_for(secret, stamp, BODY)})

    assert send(OLD) > 0 and send(NEW) > 0  # the overlap: either verifies
    clock.now = CUTOVER
    assert send(NEW) > 0
    with pytest.raises(SignatureError) as refused:
        send(OLD)
    assert refused.value.code == "signature_mismatch"


def test_with_every_secret_past_its_not_after_nothing_verifies(
        engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_ROTATION_OLD", OLD)
    config = parse_config({
        "ownership": {d.value: "stripe" for d in BusinessDomain},
        "sources": {"stripe": "stripe"},
        "stripe": {"stripe": {"legal_entity": "le_us", "webhook_secrets": [
            {"env": "T_ROTATION_OLD", "not_after": CUTOVER}]}},
    }, tmp_path)
    clock = Clock(CUTOVER)
    intake = build_webhooks(config, engine, clock)["stripe"]
    header = header_for(OLD, int(CUTOVER.timestamp()), BODY)
    with pytest.raises(SignatureError) as refused:
        intake.receive(BODY, {"Stripe-Signature": header})
    assert refused.value.code == "no_current_secret"
