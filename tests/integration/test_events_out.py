"""Events out on a real JetStream and both databases: every accepted event and milestone is
published once, in order (an aggregate's versions in version order, parked ones included), a
relay killed between its publish and its cursor publishes again without a duplicate in the
stream, one relay publishes at a time, and a position whose transaction may still commit is
never passed (PostgreSQL)."""

from __future__ import annotations

import json
import random
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Engine, insert, select

from finsync.bootstrap import Finance, build_finance
from finsync.config import DEFAULT_CONFIG, parse_config
from finsync.demo.clock import SimClock
from finsync.domain import codec
from finsync.domain.status import EventStatus
from finsync.storage import event_log, relay_log
from finsync.storage.db import reading, transaction
from finsync.storage.raw_log import RawIn
from finsync.storage.relay_log import Log
from finsync.storage.schema import events, milestones
from finsync.streaming.client import JetStream, Outgoing, PubAck
from finsync.streaming.events_out import EventsOut, RelaySettings
from finsync.streaming.settings import TransportSettings
from finsync.streaming.setup import ensure_streams
from finsync.streaming.subjects import token
from finsync.triage.service import Keep
from tests.builders import T0, contract_doc, envelope, lifecycle_stream, payment_doc
from tests.hubkit import ingest, make_hub, settings
from tests.outkit import Published, events_of, milestones_of, published
from tests.people import ALICE, BOB


def _line(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


def _contract(version: int, contract: str = "con_9") -> dict[str, Any]:
    doc = contract_doc(contract, version, 100 * version, "120.00")
    if version == 1:
        return envelope("contract.created", f"{contract}-v1", ("subscription_contract",
                        contract, 1), {"contract": doc}, correlation_id=f"{contract}-1")
    return envelope("contract.amended", f"{contract}-v{version}",
                    ("subscription_contract", contract, version),
                    {"amendment": {"id": f"amd_{version}", "contract_id": contract,
                                   "version": version, "effective_date": "2026-05-16",
                                   "reason": "upgrade", "changes": [], "contract": doc}},
                    correlation_id=f"{contract}-{version}")


@pytest.fixture
def js(transport_settings: TransportSettings) -> Any:
    client = JetStream(transport_settings, "test-events-out")
    ensure_streams(client, transport_settings)
    yield client
    client.close()


def _relay(engine: Engine, js: Any, transport: TransportSettings, name: str = "worker-a",
           **relay: Any) -> EventsOut:
    return EventsOut(engine, js, transport, name, RelaySettings(**{"batch": 7, **relay}))


def _drain(relay: EventsOut) -> int:
    """Passes until one publishes nothing; how many were published."""
    total = 0
    for _ in range(500):
        result = relay.run_once()
        assert result.leader
        if not result.published:
            return total
        total += result.published
    raise AssertionError("the relay never ran dry")


def _until_published(relay: EventsOut) -> int:
    """Passes until one publishes (a gap passes once every transaction that was running
    when it was seen has ended: other tests' transactions on the server may delay it)."""
    for _ in range(400):
        result = relay.run_once()
        if result.published:
            return result.published
        time.sleep(0.05)
    raise AssertionError("the relay never passed the gap")


def _accepted(engine: Engine) -> list[tuple[int, str, str, str, int | None]]:
    with reading(engine) as conn:
        rows = conn.execute(select(events.c.position, events.c.event_id, events.c.aggregate_type,
                                   events.c.aggregate_id, events.c.aggregate_version)
                            .where(events.c.status == EventStatus.ACCEPTED)
                            .order_by(events.c.position))
        return [(int(p), str(e), str(t), str(i), v) for p, e, t, i, v in rows]


def _milestone_ids(engine: Engine) -> list[str]:
    with reading(engine) as conn:
        ids = conn.execute(select(milestones.c.id).order_by(milestones.c.id)).scalars()
        return [f"milestone:{i}" for i in ids]


def _check_once_and_in_order(engine: Engine, messages: list[Published]) -> None:
    accepted = _accepted(engine)
    sent = events_of(messages)
    # Once: one message per accepted event, no other.
    assert [m.msg_id for m in sent] == list(dict.fromkeys(m.msg_id for m in sent))
    assert sorted(m.msg_id for m in sent) == sorted(e for _, e, _, _, _ in accepted)
    # Each aggregate's versions in version order; unversioned events in position order.
    by_aggregate: dict[tuple[str, str], list[int]] = {}
    unversioned: list[int] = []
    for m in sent:
        agg = m.body["aggregate"]
        if agg["version"] is None:
            unversioned.append(m.body["position"])
        else:
            by_aggregate.setdefault((agg["type"], agg["id"]), []).append(agg["version"])
    assert all(v == sorted(v) for v in by_aggregate.values()), by_aggregate
    assert unversioned == sorted(unversioned)
    # Milestones: every one, once, in id order.
    assert [m.msg_id for m in milestones_of(messages)] == _milestone_ids(engine)


def test_every_accepted_event_and_milestone_goes_out_once_in_order(
        engine: Engine, tmp_path: Path, js: Any, transport_settings: TransportSettings) -> None:
    hub = make_hub(engine, tmp_path, hub_settings=settings({}))
    relay = _relay(engine, js, transport_settings)
    # v3 and v2 come first and park: the relay passes them, waits, and sends them after v1.
    ingest(hub, [_line(_contract(3)), _line(_contract(2))])
    hub.run_until_idle()
    assert _drain(relay) == 0
    stream = lifecycle_stream(customers=4, amendments=2).events
    random.Random(20).shuffle(stream)
    ingest(hub, [_line(e) for e in stream[:20]])
    hub.run_until_idle()
    _drain(relay)
    ingest(hub, [_line(_contract(1)), *(_line(e) for e in stream[20:])])
    hub.run_until_idle()
    # Its lag counts what it has not published: the released v2 and v3 included.
    sent = published(transport_settings)
    with reading(engine) as conn:
        behind = relay_log.accepted_behind(conn, transport_settings.namespace)
    assert behind == (len(_accepted(engine)) - len(events_of(sent))
                      + len(_milestone_ids(engine)) - len(milestones_of(sent)))
    _drain(relay)

    messages = published(transport_settings)
    _check_once_and_in_order(engine, messages)
    versions = [m.body["aggregate"]["version"] for m in events_of(messages)
                if m.body["aggregate"]["id"] == "con_9"]
    assert versions == [1, 2, 3]
    with reading(engine) as conn:
        assert relay_log.accepted_behind(conn, transport_settings.namespace) == 0
        assert relay_log.waiting(conn, transport_settings.namespace) == []


def test_a_message_says_what_the_event_is(engine: Engine, tmp_path: Path, js: Any,
                                          transport_settings: TransportSettings) -> None:
    hub = make_hub(engine, tmp_path, hub_settings=settings({}))
    ingest(hub, [_line(_contract(1))])
    hub.run_until_idle()
    _drain(_relay(engine, js, transport_settings))
    [sent] = events_of(published(transport_settings))
    ns = transport_settings.namespace
    assert sent.subject == f"{ns}.out.events.le_us.contract.created"
    body = sent.body
    assert body["format"] == "finsync.event/1"
    assert body["type"] == "contract.created" and body["schema_version"] == 1
    assert body["aggregate"] == {"type": "subscription_contract", "id": "con_9", "version": 1}
    assert body["correlation_id"] == "con_9-1" and body["legal_entity"] == "le_us"
    assert body["payload"]["contract"]["id"] == "con_9"
    assert sent.msg_id == body["event_id"]
    # The payload reads back as the event it is.
    decoded = codec.decode_event(body["type"], body["schema_version"], body["payload"])
    assert codec.encode_event(decoded) == body["payload"]


class KilledError(Exception):
    """The relay's process died here."""


class DiesAfterPublishing:
    """A JetStream client whose `call`-th `publish_many` stores its messages (PubAcks in)
    and then dies, before the relay records its progress."""

    def __init__(self, js: JetStream, call: int) -> None:
        self._js = js
        self._left = call

    def __getattr__(self, name: str) -> Any:
        return getattr(self._js, name)

    def publish_many(self, items: list[Outgoing], timeout_s: float = 10.0) -> list[PubAck]:
        acks = self._js.publish_many(items, timeout_s)
        self._left -= 1
        if self._left == 0:
            raise KilledError
        return acks


@pytest.mark.parametrize("dies_at", [1, 2, 3])
def test_a_relay_killed_between_publish_and_cursor_leaves_each_message_once(
        dies_at: int, engine: Engine, tmp_path: Path, js: Any,
        transport_settings: TransportSettings) -> None:
    hub = make_hub(engine, tmp_path, hub_settings=settings({}))
    ingest(hub, [_line(e) for e in lifecycle_stream(customers=3, amendments=1).events])
    hub.run_until_idle()
    dying = _relay(engine, cast(JetStream, DiesAfterPublishing(js, dies_at)),
                   transport_settings)
    with pytest.raises(KilledError):
        _drain(dying)
    # The same worker starts again (its lease is still there: it takes it back).
    _drain(_relay(engine, js, transport_settings))
    _check_once_and_in_order(engine, published(transport_settings))


def test_one_relay_publishes_at_a_time(engine: Engine, tmp_path: Path, js: Any,
                                       transport_settings: TransportSettings) -> None:
    hub = make_hub(engine, tmp_path, hub_settings=settings({}))
    stream = lifecycle_stream(customers=2, amendments=1).events
    first = _relay(engine, js, transport_settings, "worker-a")
    second = _relay(engine, js, transport_settings, "worker-b")
    ingest(hub, [_line(e) for e in stream[:6]])
    hub.run_until_idle()
    assert first.run_once().leader
    assert second.run_once().leader is False
    _drain(first)
    ingest(hub, [_line(e) for e in stream[6:]])
    hub.run_until_idle()
    assert second.run_once().leader is False
    stop = threading.Event()
    stop.set()
    first.run(stop)  # a clean stop gives the lease up
    _drain(second)
    assert first.run_once().leader is False
    _check_once_and_in_order(engine, published(transport_settings))


def _stored_event(version: int, contract: str) -> dict[str, Any]:
    env = codec.draft_from_json(_contract(version, contract)).stamp(T0)
    return event_log.event_row(env, None, EventStatus.ACCEPTED, T0)


def test_a_position_whose_transaction_is_open_is_not_passed(
        engine: Engine, js: Any, transport_settings: TransportSettings) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: a reader never sees a later position "
                    "before an earlier one")
    relay = _relay(engine, js, transport_settings, settle_s=0.0)
    with engine.connect() as slow:
        pending = slow.begin()
        slow.execute(insert(events), _stored_event(1, "con_slow"))  # takes position 1
        with transaction(engine) as conn:
            conn.execute(insert(events), _stored_event(1, "con_fast"))  # position 2, committed
        assert relay.run_once().events == 0  # 1 may still commit: 2 waits behind it
        assert relay.run_once().events == 0
        pending.commit()
    assert _drain(relay) == 2
    assert [m.body["aggregate"]["id"] for m in events_of(published(transport_settings))] == [
        "con_slow", "con_fast"]


def test_a_rolled_back_position_is_passed_once_no_transaction_can_hold_it(
        engine: Engine, js: Any, transport_settings: TransportSettings) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite positions are not taken by rolled-back inserts")
    relay = _relay(engine, js, transport_settings, settle_s=0.0)
    with engine.connect() as slow:
        pending = slow.begin()
        slow.execute(insert(events), _stored_event(1, "con_gone"))
        with transaction(engine) as conn:
            conn.execute(insert(events), _stored_event(1, "con_kept"))
        assert relay.run_once().events == 0
        pending.rollback()
    assert _until_published(relay) == 1
    with reading(engine) as conn:
        assert relay_log.cursor(conn, transport_settings.namespace, Log.EVENTS) == 2


def test_an_older_schema_goes_out_upcast_and_an_unreadable_one_as_stored(
        engine: Engine, js: Any, transport_settings: TransportSettings) -> None:
    amended = _contract(2, "con_old")  # schema v1 on the wire: its changes' v1 op names
    amended["payload"]["amendment"]["changes"] = [
        {"op": "set_quantity", "line_id": "ln_seats", "before": "100", "after": "200"}]
    old = {**_stored_event(2, "con_old"), "schema_version": 1,
           "payload": json.dumps(amended["payload"])}
    broken = {**_stored_event(3, "con_old"), "schema_version": 1,
              "payload": json.dumps({"amendment": {"id": "amd_x"}})}
    with transaction(engine) as conn:
        conn.execute(insert(events), [old, broken])
    _drain(_relay(engine, js, transport_settings))
    first, second = events_of(published(transport_settings))
    assert first.body["schema_version"] == 2
    expected = codec.decode_event("contract.amended", 1, amended["payload"])
    assert first.body["payload"] == codec.encode_event(expected)
    assert first.body["legal_entity"] == "le_us"
    # Kept as stored rather than not at all: its version, its payload, no entity.
    assert second.body["schema_version"] == 1
    assert second.body["payload"] == {"amendment": {"id": "amd_x"}}
    assert second.body["legal_entity"] is None
    ns = transport_settings.namespace
    assert second.subject == f"{ns}.out.events.{token('')}.contract.amended"


@pytest.fixture
def finance(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Finance]:
    monkeypatch.setenv("FINSYNC_DATABASE_URL", db_url)
    config = parse_config(tomllib.loads(DEFAULT_CONFIG.read_text()), tmp_path)
    config = config.model_copy(update={"routes": {"payment.applied": ["ledger"]}, "pumps": {}})
    built = build_finance(config, clock=SimClock(datetime(2026, 1, 1, 9, tzinfo=UTC)))
    yield built
    built.hub.engine.dispose()


def _payment(amount: str) -> bytes:
    return json.dumps(envelope("payment.applied", "pay-1", ("payment", "pay_1", None),
                               {"payment": payment_doc("pay_1", amount, "inv_1")},
                               correlation_id="ord_1")).encode()


@pytest.mark.parametrize("keep", [Keep.RECEIVED, Keep.STORED])
def test_a_changed_body_waits_for_finance_and_goes_out_only_if_chosen(
        keep: Keep, finance: Finance, js: Any, transport_settings: TransportSettings) -> None:
    engine = finance.hub.engine
    relay = _relay(engine, js, transport_settings)
    ns = transport_settings.namespace
    # The payment waits for its invoice (its delivery retries), so its body may still change.
    finance.hub.intake.store([RawIn("canonical", _payment("60000.00"), {})])
    finance.hub.run_until_idle()
    _drain(relay)
    finance.hub.intake.store([RawIn("canonical", _payment("59999.00"), {})])
    finance.hub.run_until_idle()
    _drain(relay)
    with reading(engine) as conn:
        assert len(relay_log.waiting(conn, ns)) == 1  # the changed body, rejected for now
    [row] = finance.triage.listing(status="open", exception_class="duplicate_event")
    asked = finance.triage.resolve_duplicate(int(row["id"]), keep, ALICE, "chosen")
    assert finance.triage.approve(asked.action_id, BOB, "agreed").status == "done"
    _drain(relay)
    sent = events_of(published(transport_settings))
    amounts = [(m.body["payload"]["payment"]["amount"], m.body["replaces"]) for m in sent]
    first = sent[0].body["event_id"]
    if keep is Keep.RECEIVED:
        assert amounts == [("60000.00", None), ("59999.00", first)]
    else:
        assert amounts == [("60000.00", None)]
    with reading(engine) as conn:
        assert relay_log.waiting(conn, ns) == []


def test_a_dead_relays_lease_runs_out_and_another_takes_over(
        engine: Engine, tmp_path: Path, transport_settings: TransportSettings) -> None:
    transport = replace(transport_settings, lease_ttl_s=1.0)
    hub = make_hub(engine, tmp_path, hub_settings=settings({}))
    stream = lifecycle_stream(customers=2, amendments=1).events
    with JetStream(transport, "test-takeover") as js:
        ensure_streams(js, transport)
        dead = _relay(engine, js, transport, "worker-a")
        ingest(hub, [_line(e) for e in stream[:6]])
        hub.run_until_idle()
        _drain(dead)  # then killed: it never renews nor releases its lease
        ingest(hub, [_line(e) for e in stream[6:]])
        hub.run_until_idle()
        alive = _relay(engine, js, transport, "worker-b")
        for _ in range(100):  # the lease runs out lease_ttl_s after its last renewal
            if alive.run_once().leader:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the dead relay's lease never ran out")
        _drain(alive)
        assert dead.run_once().leader is False  # back from the dead: it is not the relay
    _check_once_and_in_order(engine, published(transport))


def test_concurrent_writers_with_rollbacks_lose_nothing_and_double_nothing(
        engine: Engine, js: Any, transport_settings: TransportSettings) -> None:
    """Four writers commit or roll back small transactions, holding them open a while,
    while the relay passes: every committed event goes out once, no rolled-back one."""
    relay = _relay(engine, js, transport_settings, settle_s=0.05, batch=50)
    rng = random.Random(20)
    plans = [[(rng.randint(1, 3), rng.random() < 0.2, rng.random() * 0.02) for _ in range(15)]
             for _ in range(4)]
    errors: list[BaseException] = []

    def write(writer: int) -> None:
        try:
            for i, (count, rolled_back, hold_s) in enumerate(plans[writer]):
                with engine.connect() as conn:
                    tx = conn.begin()
                    conn.execute(insert(events), [_stored_event(1, f"con_{writer}_{i}_{k}")
                                                  for k in range(count)])
                    time.sleep(hold_s)
                    if rolled_back:
                        tx.rollback()
                    else:
                        tx.commit()
        except BaseException as exc:  # reported by the test below
            errors.append(exc)

    writers = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in writers:
        thread.start()
    while any(t.is_alive() for t in writers):
        relay.run_once()
    for thread in writers:
        thread.join()
    assert errors == []
    for _ in range(200):  # the last gaps settle once no writer runs
        relay.run_once()
        with reading(engine) as conn:
            if relay_log.accepted_behind(conn, transport_settings.namespace) == 0:
                break
        time.sleep(0.05)
    committed = {f"con_{w}_{i}_{k}" for w, plan in enumerate(plans)
                 for i, (count, rolled_back, _) in enumerate(plan) if not rolled_back
                 for k in range(count)}
    sent = [m.body["aggregate"]["id"] for m in events_of(published(transport_settings))]
    assert sorted(sent) == sorted(committed)


class StallsWhileAnotherRelays:
    """A JetStream client whose first `publish_many` stalls while another relay (the same
    worker restarted, taking its lease back) drains everything."""

    def __init__(self, js: JetStream, other: Callable[[], object]) -> None:
        self._js = js
        self._other: Callable[[], object] | None = other

    def __getattr__(self, name: str) -> Any:
        return getattr(self._js, name)

    def publish_many(self, items: list[Outgoing], timeout_s: float = 10.0) -> list[PubAck]:
        if self._other is not None:
            other, self._other = self._other, None
            other()
        return self._js.publish_many(items, timeout_s)


def test_a_stalled_relay_never_moves_the_cursor_back(
        engine: Engine, tmp_path: Path, js: Any, transport_settings: TransportSettings) -> None:
    hub = make_hub(engine, tmp_path, hub_settings=settings({}))
    ingest(hub, [_line(e) for e in lifecycle_stream(customers=3, amendments=1).events])
    hub.run_until_idle()
    other = _relay(engine, js, transport_settings, batch=500)
    stalled = _relay(engine, cast(JetStream, StallsWhileAnotherRelays(js, lambda: _drain(other))),
                     transport_settings, batch=3)
    result = stalled.run_once()  # read 3 rows at cursor 0; the other relay moved it to the end
    assert result.events == 0  # published (duplicates), but its cursor move was refused
    ns = transport_settings.namespace
    with reading(engine) as conn:
        assert relay_log.cursor(conn, ns, Log.EVENTS) == max(p for p, *_ in _accepted(engine))
    _check_once_and_in_order(engine, published(transport_settings))
