"""Deliveries sent again are answered a set at a time by the targets that applied them
already (`hub.redelivery`): the receipt recorded is the one each call would give, the
calls are not made one by one, and an ask the store cannot answer exactly is left to the
call, which decides it as before."""

from __future__ import annotations

import tomllib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, func, select

from finsync.bootstrap import Finance, build_finance, build_revenue_service
from finsync.config import DEFAULT_CONFIG, FinsyncConfig, parse_config
from finsync.domain.envelope import Envelope
from finsync.domain.fingerprint import plain
from finsync.domain.status import DeliveryStatus
from finsync.generator.run import Request, generate
from finsync.hub import delivery as delivery_module
from finsync.hub.delivery import DeliveryWorker, context
from finsync.hub.replay import ReplayFilter
from finsync.storage import event_log, jsonutil
from finsync.storage.call_log import external_calls
from finsync.storage.db import reading
from finsync.storage.outbox import Delivery
from finsync.storage.schema import deliveries
from finsync.systems.revrec import tables as rt
from finsync.systems.revrec.asked import Asked, asked_book
from finsync.systems.revrec.errors import IdempotencyMismatchError

ANSWERING = ("revrec", "tax")


@pytest.fixture(autouse=True)
def _no_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FINSYNC_DATABASE_URL", raising=False)
    monkeypatch.delenv("FINSYNC_CONFIG", raising=False)


@dataclass(frozen=True)
class Company:
    config: FinsyncConfig
    finance: Finance


@pytest.fixture
def company(db_url: str, tmp_path: Path) -> Iterator[Company]:
    """A small generated company, every delivery made once."""
    yield from _generated(db_url, tmp_path, {})


def _generated(db_url: str, tmp_path: Path, delivery: dict[str, Any]) -> Iterator[Company]:
    """The small company, with `delivery` set in its configuration's `[delivery]`."""
    data = tomllib.loads(DEFAULT_CONFIG.read_text())
    data["hub"]["database_url"] = db_url
    data["delivery"].update(delivery)
    config = parse_config(data, tmp_path)
    generate(config, Request(customers=4, months=2, seed=3))
    finance = build_finance(config)
    yield Company(config, finance)
    finance.dispose()


def _calls(finance: Finance) -> Counter[tuple[str, str]]:
    c = external_calls.c
    with reading(finance.hub.engine) as conn:
        return Counter({(str(s), str(m)): int(n) for s, m, n in conn.execute(
            select(c.system, c.method, func.count()).group_by(c.system, c.method))})


def test_a_replay_is_answered_in_sets_with_the_receipts_each_call_gives(
        company: Company) -> None:
    finance = company.finance
    hub = finance.hub
    before = _calls(finance)
    replayed = hub.replay(ReplayFilter(everything=True))
    summary = hub.run_until_idle()
    assert summary.deliveries_attempted == replayed.requeued
    assert set(hub.status()["deliveries"]) == {"done"}
    made = _calls(finance) - before
    # No delivery to revenue or tax was called again: each batch asked once.
    assert {system for system, _ in made} <= {*ANSWERING, "ledger"}
    assert all(method == "answered" for system, method in made if system in ANSWERING)
    assert 0 < sum(n for (s, _), n in made.items() if s in ANSWERING) < 20
    d = deliveries.c
    with reading(hub.engine) as conn:
        rows = conn.execute(select(d.id, d.event_id, d.target, d.delivery_key,
                                   d.partition_key, d.correlation_id, d.result)
                            .where(d.target.in_(ANSWERING))).all()
        events = event_log.get_many(conn, [r.event_id for r in rows])
    assert rows
    targets = hub.worker._targets
    for row in rows:  # the oracle: the call itself, made again now
        env = events[row.event_id]
        assert isinstance(env, Envelope)
        delivery = Delivery(row.id, row.event_id, row.target, row.delivery_key,
                            row.partition_key, row.correlation_id, DeliveryStatus.DONE, 1)
        receipt = targets[row.target].deliver(env.event, context(delivery, env))
        assert jsonutil.loads(row.result) == jsonutil.loads(jsonutil.dumps(plain(receipt)))


def test_only_an_ask_made_with_this_very_body_and_linked_is_answered(
        company: Company) -> None:
    service = build_revenue_service(company.config, company.finance.hub.engine)
    with reading(company.finance.hub.engine) as conn:
        key = str(conn.execute(select(rt.receipts.c.idempotency_key).where(
            rt.receipts.c.kind == "contract").limit(1)).scalar_one())
    booked = service.find(key)
    assert booked is not None
    state = service.state(booked.subscription_contract_id)
    assert state is not None
    contract = state.contract
    assert service.answered([asked_book(contract, key)]) == {key: booked}
    # Another body under the key: the call refuses it (duplicate_event), so the store does
    # not answer it.
    other = replace(contract, customer_id="cus_other")
    assert service.answered([asked_book(other, key)]) == {}
    with pytest.raises(IdempotencyMismatchError):
        service.book(other, key, "evt_other")
    assert service.answered([Asked("no_such_key", contract)]) == {}
    # A document the change links, not linked (a call that died before its link): the call
    # links it, so the store does not answer.
    assert service.answered([Asked(key, contract, ("inv_not_linked",))]) == {}


def _claim_limits(worker: DeliveryWorker, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The `limit` of each claim the worker makes from now on."""
    limits: list[int] = []
    claim = worker.claim

    def counted(conn: Connection, lease_s: float, limit: int, **kwargs: Any) -> list[Delivery]:
        limits.append(limit)
        return claim(conn, lease_s, limit, **kwargs)
    monkeypatch.setattr(worker, "claim", counted)
    return limits


@pytest.fixture
def small_batches(db_url: str, tmp_path: Path) -> Iterator[Company]:
    """The small company, delivered in batches of 3."""
    yield from _generated(db_url, tmp_path, {"batch_size": 3})


def test_rounds_that_need_no_call_claim_more_each_time(
        small_batches: Company, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = small_batches.finance.hub
    replayed = hub.replay(ReplayFilter(everything=True))
    limits = _claim_limits(hub.worker, monkeypatch)
    settled = []
    while sent := hub.worker.run_once():
        settled.append(sent)
    # 3, then doubled after every round its targets answered in a set.
    assert limits[:4] == [3, 6, 12, 24]
    assert settled[:3] == [3, 6, 12]
    summary = hub.run_until_idle()  # the ledger's, through its buffer
    assert sum(settled) + summary.deliveries_attempted == replayed.requeued
    assert set(hub.status()["deliveries"]) == {"done"}


def test_a_round_calls_at_most_a_batch_and_gives_the_rest_back_untried(
        small_batches: Company, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = small_batches.finance.hub
    hub.replay(ReplayFilter(everything=True))
    limits = _claim_limits(hub.worker, monkeypatch)
    assert hub.worker.run_once() == 3  # answered in a set: the next claim takes 6
    before = _calls(small_batches.finance)
    monkeypatch.setattr(delivery_module, "answered", lambda *args: {})  # none answered
    d = deliveries.c
    with reading(hub.engine) as conn:
        attempts = dict(conn.execute(select(d.id, d.attempts)).all())
    assert hub.worker.run_once() == 3  # of the 6 claimed, 3 called, 3 given back
    assert limits == [3, 6]
    made = _calls(small_batches.finance) - before
    assert sum(n for (_, method), n in made.items() if method != "answered") == 3
    with reading(hub.engine) as conn:
        rows = conn.execute(select(d.id, d.status, d.attempts, d.lease_owner)
                            .where(d.target.in_(ANSWERING))).all()
    tried = [r for r in rows if r.attempts > attempts[r.id]]
    assert len(tried) == 3 and all(r.status == DeliveryStatus.DONE for r in tried)
    assert all(r.lease_owner is None for r in rows)
    assert {r.status for r in rows} == {DeliveryStatus.DONE, DeliveryStatus.PENDING}
    hub.worker.run_once()
    assert limits == [3, 6, 3]  # a round that called brings the claim back to the batch
