"""The HubSpot fetcher's state: the fetch queue and the version of each approved state, on
SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from finsync.connectors.hubspot import state
from finsync.connectors.hubspot.state import FetchState, Numbered, ObjectRef

NOW = datetime(2026, 5, 15, 9, 30, tzinfo=UTC)
DEAL = ObjectRef("deal", "9001")


def fetch_state(engine: Engine, source: str = "crm") -> FetchState:
    state.upgrade(engine)
    return FetchState(engine, source, lambda: NOW)


def test_a_queued_object_is_queued_once_until_done(engine: Engine) -> None:
    queue = fetch_state(engine)
    assert queue.note([DEAL, DEAL, ObjectRef("company", "7001")]) == 2
    assert queue.note([DEAL]) == 0  # fifty webhooks about one deal: one fetch
    assert set(queue.queued(10)) == {DEAL, ObjectRef("company", "7001")}
    assert len(queue.queued(1)) == 1  # at most what a run reads
    queue.done([DEAL])
    assert queue.queued(10) == [ObjectRef("company", "7001")]
    assert fetch_state(engine, "other").queued(10) == []  # per source


def test_versions_follow_the_content_not_the_reads(engine: Engine) -> None:
    numbers = fetch_state(engine)
    v1_at, v2_at = NOW, NOW + timedelta(days=140)
    assert numbers.number(DEAL, "a" * 64, v1_at) == Numbered(1, duplicate=False)
    # Read again (a retried webhook, a crash before the queue was cleared): the same version.
    assert numbers.number(DEAL, "a" * 64, v1_at) == Numbered(1, duplicate=True)
    assert numbers.number(DEAL, "b" * 64, v2_at) == Numbered(2, duplicate=False)
    # A read older than the latest version (eventual consistency) gets no number.
    assert numbers.number(DEAL, "a" * 64, v1_at) == Numbered(None, duplicate=False)
    # The same content changed back later is a change: the next version.
    assert numbers.number(DEAL, "a" * 64, v2_at + timedelta(hours=1)) == Numbered(
        3, duplicate=False)
    # Each object and each source numbers its own.
    assert numbers.number(ObjectRef("company", "9001"), "a" * 64, v1_at).version == 1
    assert fetch_state(engine, "other").number(DEAL, "c" * 64, None).version == 1
