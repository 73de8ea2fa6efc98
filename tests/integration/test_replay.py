"""Replay streams the event log in pages: whatever the page size, the same deliveries are
sent again, the books do not move, and events accepted meanwhile are not part of it."""

from __future__ import annotations

import tomllib
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from finsync.bootstrap import build_finance, build_ledger_service
from finsync.config import parse_config
from finsync.hub.replay import ReplayFilter, ReplayResult, replay
from finsync.hub.service import Hub
from finsync.storage import measures
from finsync.storage.db import reading
from tests.builders import lifecycle_stream
from tests.clikit import cli_json, with_auth
from tests.hubkit import LEDGER_ROUTES, Clock, books, ingest, make_hub, settings

STREAM = lifecycle_stream(customers=3, amendments=2)  # 3 x 3 versions x 3 events
LINES = STREAM.lines()
EVERYTHING = ReplayFilter(everything=True)


def _loaded(engine: Engine, tmp_path: Path, routes: Any = None) -> Hub:
    hub = make_hub(engine, tmp_path, hub_settings=settings(routes))
    ingest(hub, LINES)
    hub.run_until_idle()
    return hub


@pytest.mark.parametrize("batch_size", [1, 4, 1000])
def test_every_page_size_resends_the_same_deliveries(engine: Engine, tmp_path: Path,
                                                     batch_size: int) -> None:
    hub = _loaded(engine, tmp_path)
    before = books(hub, tmp_path)
    seen: list[tuple[str, int, int]] = []
    result = hub.replay(EVERYTHING, lambda *call: seen.append(call))  # default page size
    assert result == ReplayResult(len(LINES), len(before["deliveries"]), 0)
    paged = replay(hub.engine, hub.settings, EVERYTHING, hub.clock(), batch_size=batch_size,
                   progress=lambda *call: seen.append(call))
    assert paged == result
    pages = -(-len(LINES) // batch_size)
    assert [done for _, done, _ in seen[-pages:]][-1] == len(LINES)
    assert all(total == len(LINES) for _, _, total in seen)
    summary = hub.run_until_idle()
    assert summary.deliveries_attempted == len(before["deliveries"])
    after = books(hub, tmp_path)
    assert after["documents"] == before["documents"]
    assert after["cross_refs"] == before["cross_refs"]
    assert [(k, s) for k, s, _ in after["deliveries"]] == \
        [(k, s) for k, s, _ in before["deliveries"]]


def test_a_route_added_later_gets_its_deliveries_from_a_replay(engine: Engine,
                                                               tmp_path: Path) -> None:
    invoices_only = {"invoice.issued": ("ledger",)}
    first = _loaded(engine, tmp_path, invoices_only)
    assert len(books(first, tmp_path)["documents"]) == 9
    later = make_hub(engine, tmp_path, hub_settings=settings(LEDGER_ROUTES))
    result = replay(later.engine, later.settings, EVERYTHING, later.clock(), batch_size=2)
    assert (result.events, result.added, result.requeued) == (len(LINES), 9, 9)
    later.run_until_idle()
    assert len(books(later, tmp_path)["documents"]) == 18  # the payments too


def test_a_replay_takes_the_log_as_it_was_when_it_started(engine: Engine,
                                                          tmp_path: Path) -> None:
    hub = _loaded(engine, tmp_path)
    extra = lifecycle_stream(customers=1, amendments=0, first=7).lines()

    def meanwhile(stage: str, done: int, total: int) -> None:
        if done == 5:  # after the first page: more business arrives and is accepted
            ingest(hub, extra)
            hub.run_until_idle()

    result = replay(hub.engine, hub.settings, EVERYTHING, hub.clock(), batch_size=5,
                    progress=meanwhile)
    assert result.events == len(LINES)
    assert hub.status()["events"] == {"accepted": len(LINES) + len(extra)}


def test_a_selection_pages_only_through_its_events(engine: Engine, tmp_path: Path) -> None:
    hub = _loaded(engine, tmp_path)
    result = replay(hub.engine, hub.settings, ReplayFilter(correlation_id="con_1-v2"),
                    hub.clock(), batch_size=1)
    assert (result.events, result.requeued) == (3, 2)  # amendment (unrouted), invoice, payment
    with pytest.raises(ValueError, match="batch_size"):
        replay(hub.engine, hub.settings, EVERYTHING, hub.clock(), batch_size=0)


def test_replay_all_of_a_generated_company_leaves_its_books_unchanged(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINSYNC_DATABASE_URL", db_url)
    target = tmp_path / "finsync.toml"
    target.write_text(with_auth())
    made = cli_json(["generate", "--customers", "5", "--months", "2", "--seed", "4",
                     "--config", str(target)])
    before = _ledger_books(target, tmp_path)
    replayed = cli_json(["replay", "--all", "--reason", "books check", "--config", str(target)])
    assert replayed["replay"]["events"] == made["events"]
    assert replayed["replay"]["added"] == 0
    assert replayed["run"]["deliveries_attempted"] == replayed["replay"]["requeued"] > 0
    assert _ledger_books(target, tmp_path) == before


def _ledger_books(target: Path, folder: Path) -> Any:
    config = parse_config(tomllib.loads(target.read_text()), folder)
    finance = build_finance(config)
    try:
        ledger = build_ledger_service(config, finance.hub.engine)
        entries = [(e.id, e.posting_date, [(ln.account, ln.side, ln.amount) for ln in e.lines])
                   for e in ledger.entries()]
        return entries, {entity: ledger.trial_balance(entity, date(2026, 2, 28))
                         for entity, _ in ledger.entities()}
    finally:
        finance.dispose()


def test_a_replay_leaves_the_event_to_posting_latency_as_it_was(engine: Engine,
                                                                 tmp_path: Path) -> None:
    """The latency metric measures to an event's first posting: a replay a month later
    re-sends the deliveries without making every event look a month late."""
    clock = Clock()
    hub = make_hub(engine, tmp_path, hub_settings=settings(), clock=clock)
    ingest(hub, LINES)
    hub.run_until_idle()
    with reading(engine) as conn:
        before = sorted(measures.posting_latencies(conn, ["ledger"]))
    clock.advance(30 * 86_400)
    replayed = replay(hub.engine, hub.settings, EVERYTHING, hub.clock(), batch_size=100)
    hub.run_until_idle()
    assert replayed.requeued > 0 and before
    with reading(engine) as conn:
        assert sorted(measures.posting_latencies(conn, ["ledger"])) == before
