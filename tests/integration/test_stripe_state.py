"""The Stripe connector's own tables and the webhook intake's records, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine

from finsync.connectors.stripe import state
from finsync.domain.errors import SignatureError
from finsync.hub.intake import BodyTooLargeError
from finsync.hub.webhook import WebhookIntake
from finsync.storage import exception_log, raw_log
from finsync.storage.db import reading


def now() -> datetime:
    return datetime(2026, 11, 27, 12, tzinfo=UTC)


def test_versions_are_dense_per_object_and_stable_on_repeat(engine: Engine) -> None:
    state.upgrade(engine)
    poll = state.PollState(engine, "stripe", now)
    first = poll.versions([("sub_1", "evt_a"), ("cus_1", "evt_b"), ("sub_1", "evt_c")])
    assert first == {"evt_a": 1, "evt_b": 1, "evt_c": 2}
    # a poll that stopped half-way repeats the page: same numbers, then the next one
    assert poll.versions([("sub_1", "evt_c"), ("sub_1", "evt_d")]) == {"evt_c": 2, "evt_d": 3}
    other = state.PollState(engine, "stripe_eu", now)
    assert other.versions([("sub_1", "evt_x")]) == {"evt_x": 1}


def test_the_cursor_is_kept_per_source(engine: Engine) -> None:
    state.upgrade(engine)
    poll = state.PollState(engine, "stripe", now)
    assert poll.cursor() is None
    poll.save_cursor("100:evt_a")
    poll.save_cursor("105:evt_b,evt_c")
    assert poll.cursor() == "105:evt_b,evt_c"
    assert state.PollState(engine, "other", now).cursor() is None


def _refuse(body: bytes, headers: dict[str, str]) -> None:
    if headers.get("stripe-signature") != "good":
        raise SignatureError("bad", code="signature_mismatch")


def test_refusals_are_kept_once_with_one_exception_per_cause(engine: Engine) -> None:
    """Issue 12, finding 3: identical refused bodies are stored once and counted; a body over
    the limit is not stored at all; one exception per source and cause."""
    intake = WebhookIntake(engine, "stripe", _refuse, now, body_max=64)
    for _ in range(2):
        with pytest.raises(SignatureError):
            intake.receive(b'{"id": "evt_forged"}', {"Stripe-Signature": "forged"})
    with pytest.raises(BodyTooLargeError):
        intake.receive(b"x" * 65, {"Stripe-Signature": "good"})
    stored = intake.receive(b'{"id": "evt_ok"}', {"Stripe-Signature": "good"})
    with reading(engine) as conn:
        rows = exception_log.listing(conn)
        assert raw_log.counts(conn) == {"rejected": 1, "received": 1}
        kept = raw_log.get(conn, stored)
    assert [(r["class"], r["detail"], r["occurrences"]) for r in rows] == [
        ("ownership_violation", "signature_mismatch", 2),
        ("ownership_violation", "body_too_large", 1)]
    assert rows[1]["raw_event_id"] is None  # not kept: it could fill the disk
    assert kept is not None and kept.body == b'{"id": "evt_ok"}'
