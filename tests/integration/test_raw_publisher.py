"""Intake nodes (`serve --role intake`) on a real 3-node JetStream cluster: a request is
checked as today, published to the raw stream under its message id, and answered 202 only
after the PubAck; a resend is one message (and one raw event once archived); a refusal is
recorded and never published; without a quorum the answer is 503 `transport_unavailable`
and nothing is stored."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from requests import Response
from sqlalchemy import Engine

from finsync.api.app import create_app
from finsync.domain.status import RawStatus
from finsync.hub.service import Hub
from finsync.storage import event_log
from finsync.storage.db import reading
from finsync.storage.exception_log import listing
from finsync.storage.raw_log import RawEvent
from finsync.streaming.archiver import Archiver
from finsync.streaming.client import JetStream
from finsync.streaming.message_limit import MESSAGE_MAX_BYTES
from finsync.streaming.raw_message import read_raw
from finsync.streaming.raw_publisher import RawPublisher
from finsync.streaming.settings import TransportSettings
from tests import authkit
from tests.hubkit import make_hub
from tests.natskit import NatsCluster
from tests.rawkit import jetstream, payment, raw_rows, stream_messages

JSON = {"content-type": "application/json"}


@pytest.fixture
def node(transport_settings: TransportSettings) -> Iterator[JetStream]:
    with jetstream(transport_settings) as js:
        yield js


def _intake_node(hub: Hub, settings: TransportSettings, timeout_s: float = 5.0) -> FastAPI:
    """An intake node's app, with a connection of its own (closed when the app stops)."""
    js = JetStream(settings, "test-intake-node")
    return create_app(hub, publisher=RawPublisher(js, settings, timeout_s=timeout_s))


def _sent(client: TestClient, body: bytes, attempts: int = 10) -> Response:
    """A request sent as a client does: again after each 503 (a cluster whose nodes just
    restarted may take a moment to elect its leaders), `attempts` times at most."""
    for _ in range(attempts - 1):
        response = client.post("/v1/sources/billing/events", content=body, headers=JSON)
        if response.status_code != 503:
            return response
        threading.Event().wait(float(response.headers["retry-after"]))
    return client.post("/v1/sources/billing/events", content=body, headers=JSON)


def _payload_digest(hub: Hub, body: bytes) -> str:
    """The first 16 hex digits of the hash acceptance keeps for the body's one event."""
    [envelope] = hub.mappers.map(RawEvent(0, "billing", datetime(2026, 1, 1, tzinfo=UTC), {},
                                          body, RawStatus.RECEIVED))
    return event_log.event_hash(envelope)[:16]


def test_a_request_is_published_under_its_source_event_id_and_stored_nowhere_else(
        engine: Engine, tmp_path: Path, node: JetStream,
        transport_settings: TransportSettings) -> None:
    hub = make_hub(engine, tmp_path)
    body = payment(1)
    with authkit.client(_intake_node(hub, transport_settings), engine) as client:
        response = client.post("/v1/sources/billing/events", content=body,
                               headers={**JSON, "x-request-id": "req-1",
                                        "x-api-key": "sk_live_secret"})
    assert response.status_code == 202
    transport_id = f"billing/gw-1#{_payload_digest(hub, body)}"
    assert response.json() == {"status": "stored", "transport_id": transport_id,
                               "stream_seq": 1, "duplicate": False}
    [message] = stream_messages(node, transport_settings, "RAW",
                                f"{transport_settings.namespace}.raw.>")
    assert message.subject == f"{transport_settings.namespace}.raw.billing"
    assert message.data == body
    read = read_raw(message.data, message.headers)
    assert read.transport_id == transport_id
    assert read.raw.source == "billing" and read.raw.content_type == "application/json"
    # The allowlisted headers travel; a credential in a header never does.
    assert read.raw.headers["x-request-id"] == "req-1"
    assert "x-api-key" not in read.raw.headers and "authorization" not in read.raw.headers
    assert raw_rows(engine) == []  # the node stores nothing but refusals


def test_the_same_request_twice_is_one_message_and_once_archived_one_raw_event(
        engine: Engine, tmp_path: Path, node: JetStream,
        transport_settings: TransportSettings) -> None:
    hub = make_hub(engine, tmp_path)
    with authkit.client(_intake_node(hub, transport_settings), engine) as client:
        first = client.post("/v1/sources/billing/events", content=payment(7), headers=JSON)
        again = client.post("/v1/sources/billing/events", content=payment(7), headers=JSON)
    assert first.status_code == again.status_code == 202
    assert again.json()["duplicate"] is True
    assert again.json()["transport_id"] == first.json()["transport_id"]
    archiver = Archiver(engine, hub.mappers, node, transport_settings, hub.clock,
                        fetch_wait_s=15.0)  # returns when the message comes: a loaded CI is slow
    assert archiver.archive_batch().stored == 1
    [row] = raw_rows(engine)
    assert row["transport_id"] == first.json()["transport_id"]
    assert row["status"] == RawStatus.MAPPED


def test_concurrent_requests_share_a_publish_and_each_gets_its_own_id(
        engine: Engine, tmp_path: Path, node: JetStream,
        transport_settings: TransportSettings) -> None:
    hub = make_hub(engine, tmp_path)
    app = _intake_node(hub, transport_settings)
    with authkit.client(app, engine) as client, ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(
            lambda n: client.post("/v1/sources/billing/events", content=payment(n),
                                  headers=JSON), range(24)))
        publisher = app.state.intake_writer
        batches, items = publisher.batches, publisher.items
    assert [r.status_code for r in responses] == [202] * 24
    ids = [r.json()["transport_id"] for r in responses]
    assert [i.split("#")[0] for i in ids] == [f"billing/gw-{n}" for n in range(24)]
    assert items == 24 and batches <= 24
    assert len(stream_messages(node, transport_settings, "RAW",
                               f"{transport_settings.namespace}.raw.>")) == 24


def test_a_refusal_is_recorded_as_today_and_never_published(
        engine: Engine, tmp_path: Path, node: JetStream,
        transport_settings: TransportSettings) -> None:
    hub = make_hub(engine, tmp_path)
    with authkit.client(_intake_node(hub, transport_settings), engine) as client:
        broken = client.post("/v1/sources/billing/events", content=b"{broken", headers=JSON)
        unknown = client.post("/v1/sources/nobody/events", content=payment(1), headers=JSON)
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "invalid_json"
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "unknown_source"
    rows = raw_rows(engine)  # the refused bodies, kept once each, as without a transport
    assert [(r["source"], r["status"], r["error_code"], r["transport_id"]) for r in rows] == [
        ("billing", RawStatus.REJECTED, "invalid_json", None),
        ("nobody", RawStatus.REJECTED, "unknown_source", None)]
    assert stream_messages(node, transport_settings, "RAW",
                           f"{transport_settings.namespace}.raw.>") == []


def test_without_a_quorum_the_node_answers_503_and_nothing_is_stored(
        engine: Engine, tmp_path: Path, node: JetStream, nats_cluster: NatsCluster,
        transport_settings: TransportSettings) -> None:
    hub = make_hub(engine, tmp_path)
    app = _intake_node(hub, transport_settings, timeout_s=2.0)
    with authkit.client(app, engine) as client:
        assert _sent(client, payment(1)).status_code == 202
        nats_cluster.kill(1)
        nats_cluster.kill(2)
        try:
            refused = client.post("/v1/sources/billing/events", content=payment(2),
                                  headers=JSON)
        finally:
            nats_cluster.restart(1)
            nats_cluster.restart(2)
            nats_cluster.wait_ready()
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "transport_unavailable"
        assert int(refused.headers["retry-after"]) >= 1
        # Back to a quorum, the client's retry is taken (and the first message kept).
        retried = _sent(client, payment(2))
    assert retried.status_code == 202
    assert raw_rows(engine) == []
    subjects = f"{transport_settings.namespace}.raw.>"
    ids = sorted(read_raw(m.data, m.headers).transport_id.split("#")[0]
                 for m in stream_messages(node, transport_settings, "RAW", subjects))
    assert ids == ["billing/gw-1", "billing/gw-2"]



def _padded(body: bytes, size: int) -> bytes:
    """`body` (a JSON object) padded with blanks to `size` bytes: it maps as it did."""
    return body[:-1] + b" " * (size - len(body)) + b"}"


def test_a_request_too_large_for_the_transport_is_refused_alone_and_the_node_goes_on(
        engine: Engine, tmp_path: Path, node: JetStream,
        transport_settings: TransportSettings) -> None:
    hub = make_hub(engine, tmp_path)
    # Within the source's body_max_bytes (1 MiB), over NATS's max_payload with its headers:
    # sent, it would close the node's connection (every request in flight would fail).
    too_large = _padded(payment(1), MESSAGE_MAX_BYTES - 100)
    app = _intake_node(hub, transport_settings)
    with authkit.client(app, engine) as client, ThreadPoolExecutor(4) as pool:
        bodies = [payment(2), too_large, payment(3), payment(4)]
        responses = list(pool.map(
            lambda b: client.post("/v1/sources/billing/events", content=b, headers=JSON),
            bodies))
        after = client.post("/v1/sources/billing/events", content=payment(5), headers=JSON)
    assert [r.status_code for r in responses] == [202, 413, 202, 202]
    refused = responses[1].json()["error"]
    assert refused["code"] == "body_too_large" and "max_payload" in refused["message"]
    assert after.status_code == 202  # the connection is still up
    assert raw_rows(engine) == []  # a body over a limit is never kept …
    with reading(engine) as conn:  # … but its refusal is counted, as today
        [opened] = listing(conn)
    assert opened["fingerprint"] == "refused:billing:body_too_large"
    published = stream_messages(node, transport_settings, "RAW",
                                f"{transport_settings.namespace}.raw.>")
    assert len(published) == 4
