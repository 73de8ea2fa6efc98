"""The HubSpot fetcher's state: the fetch queue and the version of each approved state, on
SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from finsync.connectors.hubspot import state
from finsync.connectors.hubspot.fetcher import Fetcher
from finsync.connectors.hubspot.mapping import HubSpotSettings
from finsync.connectors.hubspot.snapshot import Obj
from finsync.connectors.hubspot.state import FetchState, Numbered, ObjectRef
from tests.hubspotkit import AMENDMENT, api_shape, objects

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


class ReplayingCrm:
    """A CRM whose deal reads answer the states given, one after the other (a lagging
    replica answers an older state after a newer one); other reads follow the deal's."""

    def __init__(self, crm_states: list[dict[str, Any]]) -> None:
        self.states = crm_states
        self.current = crm_states[0]

    def deal(self, deal_id: str) -> Obj:
        self.current = self.states.pop(0)
        return api_shape(self.current["deals"][deal_id])

    def company(self, company_id: str) -> Obj:
        return api_shape(self.current["companies"][company_id])

    def quote(self, quote_id: str) -> Obj:
        return api_shape(self.current["quotes"][quote_id])

    def line_item(self, line_item_id: str) -> Obj:
        return api_shape(self.current["line_items"][line_item_id])

    def line_items(self, ids: Sequence[str]) -> list[Obj]:
        return [api_shape(self.current["line_items"][i]) for i in ids]


def test_an_older_state_read_after_a_newer_one_is_not_sent(engine: Engine) -> None:
    v1, v2 = objects(), objects()
    for kind, items in objects(AMENDMENT).items():
        v2[kind] = {**v2[kind], **items}
    # The upgrade, then a stale replica's answer, then the upgrade again.
    queue = fetch_state(engine)
    fetcher = Fetcher(ReplayingCrm([v2, v1, v2]), queue, HubSpotSettings("le_us"),
                      lambda: NOW)
    rounds: list[list[tuple[str, int | None]]] = []
    for _ in range(3):
        sent: list[bytes] = []
        queue.note([DEAL])
        fetcher.fetch(sent.extend)
        rounds.append([(json.loads(b)["kind"], json.loads(b)["version"]) for b in sent])
    # The first state seen is the upgrade: version 1 of the deal (and of its company).
    assert rounds[0] == [("company", 1), ("deal", 1)]
    # Then older content, modified before version 1's state: not sent.
    assert rounds[1] == [("company", 1)]
    # The upgrade again: the same content, the same version 1 (a duplicate to the hub).
    assert rounds[2] == [("company", 1), ("deal", 1)]
    assert queue.queued(10) == []
