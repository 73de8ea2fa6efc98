"""`finsync cluster status` and the cluster's metrics on a real JetStream: two workers'
heartbeats and partition leases written through the KV in the workers' format
(`streaming.ownership`), partition consumers with a backlog, one message handed out twice,
and an events-out relay behind the event log."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig
from sqlalchemy import Engine

from finsync.bootstrap import DAILY_SWITCHED_OFF, build_finance, build_metrics
from finsync.cli.main import app
from finsync.config import load_config
from finsync.streaming.client import JetStream
from finsync.streaming.cluster import ClusterStatus, survey
from finsync.streaming.metrics import as_prometheus
from finsync.streaming.settings import TransportSettings
from finsync.streaming.setup import ensure_streams
from tests.builders import lifecycle_stream
from tests.clikit import cli_json, runner, with_auth
from tests.hubkit import ingest, make_hub, settings

STARTED = "2026-12-07T00:00:00+00:00"
NO_DAILY = DAILY_SWITCHED_OFF
# What the partitions hold, per partition (4 partitions; the 4th gets nothing).
BACKLOG = {0: 5, 1: 3, 2: 1}


@pytest.fixture
def transport_settings(transport_settings: TransportSettings) -> TransportSettings:
    """The session cluster's settings for this test, with 4 partitions."""
    return replace(transport_settings, partitions=4)


@pytest.fixture
def js(transport_settings: TransportSettings) -> Iterator[JetStream]:
    client = JetStream(transport_settings, "test-cluster-status")
    ensure_streams(client, transport_settings)
    yield client
    client.close()


def _write_workers(js: JetStream, transport: TransportSettings) -> None:
    """Two workers as `streaming.ownership` records them: a heartbeat per node (w1
    automatic, declining the daily duty; w2 told to take partition 2, saying when it
    started), a lease per owned partition (the owner's name, UTF-8); partition 3 has no
    owner; w1 relays, w2 runs the daily duty, nobody holds `duties`."""
    nodes = js.kv(transport.bucket("nodes"), ttl_s=transport.lease_ttl_s)
    leases = js.kv(transport.bucket("leases"), ttl_s=transport.lease_ttl_s)
    nodes.put("w1", json.dumps({"explicit": None, "declined": {"daily": NO_DAILY}}).encode())
    nodes.put("w2", json.dumps({"explicit": [2], "started_at": STARTED}).encode())
    for partition, owner in ((0, "w1"), (1, "w1"), (2, "w2")):
        leases.put(f"p{partition}", owner.encode())
    leases.put("relay", b"w1")
    leases.put("daily", b"w2")


async def _backlog(transport: TransportSettings) -> None:
    """Durable consumers p0..p3 on the partitions' subjects, BACKLOG messages in them, and
    p0's all handed out and left unacked, one of them refused (nak) and handed out again."""
    ns = transport.namespace
    nc = await nats.connect(servers=list(transport.servers))
    try:
        jsx = nc.jetstream()
        stream = transport.stream("EVENTS")
        for p in range(transport.partitions):
            await jsx.add_consumer(stream, ConsumerConfig(
                durable_name=f"p{p}", filter_subject=f"{ns}.events.*.{p}",
                ack_policy=AckPolicy.EXPLICIT, ack_wait=30))
        for p, count in BACKLOG.items():
            for n in range(count):
                await jsx.publish(f"{ns}.events.le_us.{p}", f"m{p}-{n}".encode())
        sub = await jsx.pull_subscribe_bind(f"p{0}", stream=stream)
        held = await _fetch(sub, BACKLOG[0])  # all of p0's messages handed out, unacked
        await held[0].nak()  # refused: the only one that may be handed out again
        [again] = await _fetch(sub, 1)
        assert again.metadata.num_delivered == 2
    finally:
        await nc.close()


async def _fetch(sub: Any, count: int) -> list[Any]:
    """`count` messages from a pull subscription, however many fetches that takes (a nak
    reaches the consumer's leader after a fetch sent to it may)."""
    got: list[Any] = []
    for _ in range(50):
        with contextlib.suppress(nats.errors.TimeoutError):
            got += await sub.fetch(count - len(got), timeout=0.2)
        if len(got) >= count:
            return got
    raise AssertionError(f"{len(got)} of {count} messages came")


def _surveyed(engine: Engine, tmp_path: Path, js: JetStream,
              transport: TransportSettings) -> ClusterStatus:
    _write_workers(js, transport)
    asyncio.run(_backlog(transport))
    hub = make_hub(engine, tmp_path, hub_settings=settings({}))
    ingest(hub, [json.dumps(e).encode() for e in lifecycle_stream(customers=1).events])
    hub.run_until_idle()
    return survey(js, engine, transport)


def test_status_shows_nodes_owners_lag_and_redeliveries(
        engine: Engine, tmp_path: Path, js: JetStream,
        transport_settings: TransportSettings) -> None:
    status = _surveyed(engine, tmp_path, js, transport_settings)
    found = status.as_json()
    assert [(n["name"], n["partitions"], n["explicit"], n["started_at"])
            for n in found["nodes"]] == [("w1", [0, 1], None, None), ("w2", [2], [2], STARTED)]
    owners = {p["partition"]: p["owner"] for p in found["partitions"]}
    assert owners == {0: "w1", 1: "w1", 2: "w2", 3: None}
    assert found["unowned"] == [3]
    lags = {p["partition"]: p["lag"] for p in found["partitions"]}
    # p0: all 5 handed out and unacked, one of them twice.
    assert lags[0] == {"pending": 0, "ack_pending": 5, "redelivered": 1, "behind": 5}
    assert lags[1] == {"pending": 3, "ack_pending": 0, "redelivered": 0, "behind": 3}
    assert lags[3] == {"pending": 0, "ack_pending": 0, "redelivered": 0, "behind": 0}
    assert found["archiver"] is None  # no archiver consumer made in this namespace
    # Nothing relayed yet: every accepted event (3 contracts' invoices, payments) and every
    # milestone is behind.
    assert found["events_out"]["owner"] == "w1"
    assert found["events_out"]["behind"] > 0
    assert found["singletons"] == {"relay": "w1", "duties": None, "daily": "w2"}
    assert [n["declined"] for n in found["nodes"]] == [{"daily": NO_DAILY}, {}]


def test_metrics_say_the_same(engine: Engine, tmp_path: Path, js: JetStream,
                              transport_settings: TransportSettings) -> None:
    status = _surveyed(engine, tmp_path, js, transport_settings)
    text = as_prometheus(status)
    lines = set(text.splitlines())
    assert 'finsync_partition_lag{partition="0"} 5' in lines
    assert 'finsync_partition_redelivered{partition="0"} 1' in lines
    assert 'finsync_partition_owner_info{partition="2",owner="w2"} 1' in lines
    assert not any(line.startswith('finsync_partition_owner_info{partition="3"')
                   for line in lines)
    assert "finsync_partitions_unowned 1" in lines
    assert "finsync_cluster_nodes 2" in lines
    assert f"finsync_events_out_lag {status.relay_behind}" in lines
    assert {'finsync_duty_held{duty="relay"} 1', 'finsync_duty_held{duty="duties"} 0',
            'finsync_duty_held{duty="daily"} 1'} <= lines
    assert 'finsync_duty_holder_info{duty="daily",holder="w2"} 1' in lines
    assert not any(line.startswith('finsync_duty_holder_info{duty="duties"')
                   for line in lines)
    assert 'finsync_duty_declined_info{node="w1",duty="daily"} 1' in lines
    assert 'finsync_duty_declined_info{node="w2"' not in text


def test_a_value_that_does_not_read_is_shown_not_guessed(
        engine: Engine, js: JetStream, transport_settings: TransportSettings) -> None:
    nodes = js.kv(transport_settings.bucket("nodes"), ttl_s=transport_settings.lease_ttl_s)
    leases = js.kv(transport_settings.bucket("leases"), ttl_s=transport_settings.lease_ttl_s)
    nodes.put("odd", b"\xff not json")
    nodes.put("list", b"[1, 2]")
    nodes.put("partly", json.dumps({"started_at": "yesterday",
                                    "explicit": [1, "2", True, 0],
                                    "declined": {"daily": 3, "relay": "x" * 600}}).encode())
    leases.put("p1", b"gone\xff")  # a worker whose heartbeat ran out (and a bad byte)
    status = survey(js, engine, transport_settings).as_json()
    found: dict[str, Any] = {n["name"]: n for n in status["nodes"]}
    assert found["odd"]["explicit"] is None and found["odd"]["started_at"] is None
    assert found["list"]["explicit"] is None
    assert found["partly"]["explicit"] == [0, 1] and found["partly"]["started_at"] is None
    assert found["partly"]["declined"] == {"relay": "x" * 500}  # a number is no reason
    assert found["odd"]["declined"] == {}
    assert status["partitions"][1]["owner"] == "gone\ufffd"
    assert [p["lag"] for p in status["partitions"]] == [None] * transport_settings.partitions


def _config(tmp_path: Path, transport: TransportSettings | None) -> Path:
    """The shipped configuration with `[auth]` and `transport`'s `[transport]` (None: the
    shipped in-process one)."""
    text = with_auth()
    if transport is not None:
        servers = json.dumps(list(transport.servers))
        text = text.replace('[transport]\nkind = "inprocess"\n',
                            f'[transport]\nkind = "nats"\nservers = {servers}\n'
                            f'namespace = "{transport.namespace}"\n'
                            f"partitions = {transport.partitions}\n"
                            f"replicas = {transport.replicas}\n")
    path = tmp_path / "finsync.toml"
    path.write_text(text)
    return path


def test_the_command_shows_the_cluster(
        tmp_path: Path, db_url: str, engine: Engine, js: JetStream,
        transport_settings: TransportSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINSYNC_DATABASE_URL", db_url)
    config = _config(tmp_path, transport_settings)
    _surveyed(engine, tmp_path, js, transport_settings)
    found = cli_json(["cluster", "status", "--config", str(config)])
    assert {p["partition"]: p["owner"] for p in found["partitions"]} == {
        0: "w1", 1: "w1", 2: "w2", 3: None}
    assert found["partitions"][0]["lag"]["redelivered"] == 1
    assert [n["name"] for n in found["nodes"]] == ["w1", "w2"]
    assert found["events_out"]["owner"] == "w1" and found["events_out"]["behind"] > 0
    shown = runner.invoke(app, ["cluster", "status", "--config", str(config)])
    assert shown.exit_code == 0, shown.output
    assert "unowned" in shown.output and "w2" in shown.output
    assert f"w1 runs without the daily duty: {NO_DAILY}" in " ".join(shown.output.split())


def test_the_command_needs_the_nats_transport(
        tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINSYNC_DATABASE_URL", db_url)
    config = _config(tmp_path, None)
    refused = cli_json(["cluster", "status", "--config", str(config)], code=1)
    assert refused["error"]["code"] == "config_error"
    assert 'kind = "nats"' in refused["error"]["message"]


def test_get_metrics_adds_the_clusters(
        tmp_path: Path, db_url: str, engine: Engine, js: JetStream,
        transport_settings: TransportSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINSYNC_DATABASE_URL", db_url)
    config = load_config(_config(tmp_path, transport_settings))
    _surveyed(engine, tmp_path, js, transport_settings)
    finance = build_finance(config)
    try:
        text = build_metrics(finance, config)()
        assert "finsync_invoice_posting_success_ratio" in text  # DESIGN §7's, first
        assert 'finsync_partition_owner_info{partition="0",owner="w1"} 1' in text
        assert "finsync_cluster_nodes 2" in text
        in_process = build_metrics(finance)()
        assert "finsync_cluster_nodes" not in in_process
    finally:
        finance.hub.engine.dispose()
