"""Limits at the HTTP boundary and refusals that aggregate (findings 1 and 3), through the
app, on both databases: every refusal is a 4xx with a code, and a good event sent right
after is delivered."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from finsync.api.app import create_app
from finsync.connectors.stripe import signature
from finsync.domain.errors import ExceptionClass
from finsync.domain.limits import InputLimits
from finsync.domain.status import ExceptionStatus, RawStatus
from finsync.hub.intake import RateLimitedError, RateLimiter
from finsync.hub.service import Hub
from finsync.hub.webhook import WebhookIntake
from finsync.storage import exception_log, raw_log
from finsync.storage.db import reading, transaction
from finsync.storage.schema import exceptions, raw_events
from tests import authkit
from tests.builders import envelope, payment_doc
from tests.hubkit import make_hub

SECRET = "whsec_limits"
MIB = 1 << 20
# Generous rates, so that only the rate-limit tests meet the limiter.
LIMITS = InputLimits(requests_per_s=10_000, burst=10_000)
EVENTS = "/v1/sources/billing/events"
STRIPE = "/v1/webhooks/stripe/stripe"


def _payment(n: int) -> bytes:
    return json.dumps(envelope("payment.applied", f"gw-{n}", ("payment", f"pay_{n}", None),
                               {"payment": payment_doc(f"pay_{n}", "10.00", "inv_1")},
                               correlation_id=f"c{n}")).encode()


def _verify(hub: Hub) -> Any:
    def verify(body: bytes, headers: Mapping[str, str]) -> int:
        return signature.verify(body, headers.get(signature.HEADER), [SECRET], hub.clock())
    return verify


def _signed(hub: Hub, body: bytes) -> dict[str, str]:
    return {"Stripe-Signature": signature.header_for(SECRET, int(hub.clock().timestamp()), body)}


@pytest.fixture
def hub(engine: Engine, tmp_path: Path) -> Hub:
    return make_hub(engine, tmp_path)


def _app(hub: Hub, limits: InputLimits = LIMITS) -> FastAPI:
    webhook = WebhookIntake(hub.engine, "stripe", _verify(hub), hub.clock)
    return create_app(hub, webhooks={"stripe": webhook}, limits_for=lambda _source: limits)


@pytest.fixture
def client(hub: Hub) -> TestClient:
    return authkit.client(_app(hub), hub.engine)


def _refused(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]


def _good_event_is_delivered(client: TestClient, hub: Hub, n: int = 99) -> None:
    response = client.post(EVENTS, content=_payment(n))
    assert response.status_code == 202, response.text
    hub.run_until_idle()
    assert hub.status()["deliveries"] == {"done": 1}


def _raw_rows(engine: Engine) -> list[dict[str, Any]]:
    with reading(engine) as conn:
        rows = conn.execute(select(raw_events.c.id, raw_events.c.source, raw_events.c.status,
                                   raw_events.c.error_code, raw_events.c.refusals,
                                   func.length(raw_events.c.body).label("size"))
                            .order_by(raw_events.c.id)).mappings()
        return [dict(r) for r in rows]


def _exception_rows(engine: Engine) -> list[dict[str, Any]]:
    with reading(engine) as conn:
        rows = conn.execute(select(exceptions.c.fingerprint, exceptions.c["class"],
                                   exceptions.c.occurrences, exceptions.c.objects,
                                   exceptions.c.raw_event_id, exceptions.c.status)
                            .order_by(exceptions.c.id)).mappings()
        return [dict(r) for r in rows]


# -- finding 1: nested JSON ----------------------------------------------------------------

@pytest.mark.parametrize(("body", "code"), [
    (b"[" * 100_000 + b"]" * 100_000, "json_too_deep"),
    (b"[" * 100_000, "json_too_deep"),  # unterminated: the parser would recurse all the same
    (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "json_too_deep"),
    (b"[" + b"0," * 30_000 + b"0]", "json_too_large"),
])
def test_nested_json_intake_refused_with_a_code(
        client: TestClient, hub: Hub, body: bytes, code: str) -> None:
    """Finding 1: 100,000 nested arrays got a plain-text 500 and killed the pipeline."""
    _refused(client.post(EVENTS, content=body), 422, code)
    [raw] = _raw_rows(hub.engine)
    assert (raw["status"], raw["error_code"], raw["size"]) == ("rejected", code, len(body))
    [error] = _exception_rows(hub.engine)
    assert error["fingerprint"] == f"refused:billing:{code}"
    _good_event_is_delivered(client, hub)


def test_nested_json_stored_by_a_file_is_a_mapping_error_not_a_crash(
        client: TestClient, hub: Hub) -> None:
    """Finding 1, the pipeline half: every `finsync run` crashed once such a body was stored
    (files and pushed outboxes are stored without intake's check)."""
    hub.store("canonical", [b"[" * 100_000 + b"]" * 100_000], {"x-finsync-file": "f.jsonl"})
    hub.run_until_idle()
    [error] = hub.exceptions()
    assert (error["class"], error["detail"]) == (ExceptionClass.MAPPING_ERROR, "json_too_deep")
    _good_event_is_delivered(client, hub)


# -- finding 3: sizes, and refusals that aggregate -----------------------------------------

class CountingBody:
    """A request body of `total` bytes, produced in chunks; counts what was consumed."""

    def __init__(self, total: int, chunk: int = 64 * 1024) -> None:
        self.total, self.chunk, self.consumed = total, chunk, 0

    def __iter__(self) -> Iterator[bytes]:
        while self.consumed < self.total:
            piece = b"[" + b"0" * (min(self.chunk, self.total - self.consumed) - 1)
            self.consumed += len(piece)
            yield piece


def _post_streamed(app: FastAPI, path: str, body: CountingBody,
                   headers: Mapping[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """POST through the ASGI app, pulling the body one chunk per `receive`, as a server does
    (TestClient reads a streamed body whole before the app sees it)."""
    chunks = iter(body)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        chunk = next(chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    raw_headers = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "headers": raw_headers,
             "client": ("127.0.0.1", 5000), "server": ("testserver", 80), "app": app}
    asyncio.run(app(scope, receive, send))  # type: ignore[arg-type]
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(content)


@pytest.mark.parametrize("path", [EVENTS, STRIPE])
def test_50mb_body_refused_without_reading_it_whole(
        client: TestClient, hub: Hub, path: str) -> None:
    """Finding 3: a 50 MB body was stored whole (sources) or read whole before its 413
    (Stripe). Now reading stops just past the limit and nothing of it is stored."""
    app = _app(hub)
    token = authkit.bearer(authkit.issue(hub.engine))
    body = CountingBody(50 * 1000 * 1000)
    status, answer = _post_streamed(app, path, body, token)
    assert (status, answer["error"]["code"]) == (413, "body_too_large")
    assert "limit of 1,048,576 (body_max_bytes)" in answer["error"]["message"]
    assert body.consumed <= MIB + body.chunk  # one chunk past the limit, not 50 MB
    declared = CountingBody(50 * 1000 * 1000)
    status, answer = _post_streamed(app, path, declared,
                                    {"content-length": str(declared.total), **token})
    assert (status, answer["error"]["code"]) == (413, "body_too_large")
    assert declared.consumed == 0  # Content-Length said enough
    assert "50,000,000 bytes (Content-Length)" in answer["error"]["message"]
    assert _raw_rows(hub.engine) == []  # over the limit: never stored
    [error] = _exception_rows(hub.engine)
    source = "billing" if path == EVENTS else "stripe"
    assert (error["fingerprint"], error["occurrences"]) == (
        f"refused:{source}:body_too_large", 2)
    _good_event_is_delivered(client, hub)


def test_200_unsigned_webhooks_store_one_body_and_open_one_exception(
        client: TestClient, hub: Hub) -> None:
    """Finding 3: 200 refused unsigned 1 MB webhooks added 200 MB and 200
    `ownership_violation` exceptions."""
    body = b'{"id": "evt_forged", "object": "event", "pad": "' + b"x" * 999_950 + b'"}'
    for _ in range(200):
        _refused(client.post(STRIPE, content=body), 400, "signature_missing")
    [raw] = _raw_rows(hub.engine)
    assert (raw["status"], raw["error_code"], raw["refusals"], raw["size"]) == (
        "rejected", "signature_missing", 200, len(body))
    [error] = _exception_rows(hub.engine)
    assert (error["fingerprint"], error["class"], error["occurrences"]) == (
        "refused:stripe:signature_missing", ExceptionClass.OWNERSHIP_VIOLATION, 200)
    assert json.loads(error["objects"]) == [f"raw_event:{raw['id']}"]
    assert error["raw_event_id"] is None  # an unverified body is never mapped by a retry

    signed = b'{"id": "evt_1", "object": "event", "type": "ping"}'
    accepted = client.post(STRIPE, content=signed, headers=_signed(hub, signed))
    assert accepted.status_code == 200 and accepted.json()["received"] is True
    _good_event_is_delivered(client, hub)


def test_each_cause_and_each_distinct_body_counted_apart(client: TestClient, hub: Hub) -> None:
    forged = b'{"id": "evt_forged"}'
    other = b'{"id": "evt_other"}'
    for body, headers in [(forged, {}), (forged, {}), (other, {}),
                          (forged, {"Stripe-Signature": "t=1,v1=00"})]:
        client.post(STRIPE, content=body, headers=headers)
    assert [(r["error_code"], r["refusals"]) for r in _raw_rows(hub.engine)] == [
        ("signature_missing", 2), ("signature_missing", 1), ("signature_mismatch", 1)]
    rows = _exception_rows(hub.engine)
    assert [(e["fingerprint"], e["occurrences"]) for e in rows] == [
        ("refused:stripe:signature_missing", 3), ("refused:stripe:signature_mismatch", 1)]
    assert len(json.loads(rows[0]["objects"])) == 2


@pytest.mark.parametrize("path", ["/v1/sources/netsuite/events",
                                  "/v1/webhooks/stripe/netsuite"])
def test_unknown_source_refused_once_per_cause(
        client: TestClient, hub: Hub, path: str) -> None:
    """Finding 3: each unknown-source request opened one more exception."""
    for _ in range(5):
        _refused(client.post(path, content=b"{}"), 404, "unknown_source")
    [raw] = _raw_rows(hub.engine)
    assert (raw["source"], raw["refusals"]) == ("netsuite", 5)  # kept once: nothing is lost
    [error] = _exception_rows(hub.engine)
    assert (error["fingerprint"], error["class"], error["occurrences"]) == (
        "refused:netsuite:unknown_source", ExceptionClass.MAPPING_ERROR, 5)
    assert error["raw_event_id"] == raw["id"]
    _good_event_is_delivered(client, hub)


def test_a_name_that_cannot_be_a_source_is_refused_without_keeping_it(
        client: TestClient, hub: Hub) -> None:
    for name in ("x" * 300, "bad name!", "é"):
        _refused(client.post(f"/v1/sources/{name}/events", content=b"{}"), 404,
                 "unknown_source")
    assert _raw_rows(hub.engine) == []
    [error] = _exception_rows(hub.engine)
    assert (error["fingerprint"], error["occurrences"]) == ("refused:?:unknown_source", 3)


def test_mapping_refusals_aggregate_and_name_their_raw_events(
        client: TestClient, hub: Hub) -> None:
    for body in (b"{broken", b"{broken", b"{also broken"):
        _refused(client.post(EVENTS, content=body), 400, "invalid_json")
    rows = _raw_rows(hub.engine)
    assert [r["refusals"] for r in rows] == [2, 1]
    [error] = _exception_rows(hub.engine)
    assert error["occurrences"] == 3
    assert json.loads(error["objects"]) == [f"raw_event:{r['id']}" for r in rows]
    assert error["raw_event_id"] == rows[-1]["id"]  # the latest, what triage maps again
    with reading(hub.engine) as conn:
        assert raw_log.refused_ids(conn, "billing", "invalid_json") == [r["id"]
                                                                           for r in rows]


def test_a_resolved_refusal_reopens_as_a_new_episode(client: TestClient, hub: Hub) -> None:
    client.post(EVENTS, content=b"{broken")
    client.post(EVENTS, content=b"{broken")
    [first] = hub.exceptions()
    with transaction(hub.engine) as conn:
        exception_log.close(conn, first["id"], ExceptionStatus.RESOLVED, "sender fixed",
                            hub.clock())
    client.post(EVENTS, content=b"{broken")
    [again] = _exception_rows(hub.engine)
    assert (again["status"], again["occurrences"]) == ("open", 1)


def test_a_signed_source_is_refused_unsigned_at_the_source_route(
        client: TestClient, hub: Hub) -> None:
    """The source route would take a Stripe event without its signature."""
    _refused(client.post("/v1/sources/stripe/events", content=b'{"id": "evt_1"}'), 400,
             "signature_missing")
    [error] = _exception_rows(hub.engine)
    assert error["class"] == ExceptionClass.OWNERSHIP_VIOLATION


# -- rate limits ---------------------------------------------------------------------------

def test_rate_limited_source_answered_429_with_retry_after(hub: Hub) -> None:
    app = _app(hub, InputLimits(requests_per_s=0.25, burst=2))
    # A still clock: on a busy machine two requests can take seconds, refilling the bucket.
    app.state.admission.limiter = RateLimiter(lambda: 0.0)
    client = authkit.client(app, hub.engine)
    assert client.post(EVENTS, content=_payment(1)).status_code == 202
    assert client.post(EVENTS, content=_payment(2)).status_code == 202
    limited = client.post(EVENTS, content=_payment(3))
    _refused(limited, 429, "rate_limited")
    assert limited.headers["Retry-After"] == "4"  # one token at 0.25/s
    assert "0.25 requests/s (requests_per_s, burst 2)" in limited.json()["error"]["message"]
    assert len(_raw_rows(hub.engine)) == 2 and _exception_rows(hub.engine) == []
    # Other sources have buckets of their own; unknown names share one.
    _refused(client.post(STRIPE, content=b"{}"), 400, "signature_missing")
    for name in ("a", "b"):
        _refused(client.post(f"/v1/sources/{name}/events", content=b"{}"), 404,
                 "unknown_source")
    _refused(client.post("/v1/sources/c/events", content=b"{}"), 429, "rate_limited")


def test_the_bucket_refills_at_the_sustained_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(lambda: now[0])
    limits = InputLimits(requests_per_s=2, burst=3)
    for _ in range(3):
        limiter.take("s", limits)
    with pytest.raises(RateLimitedError) as caught:
        limiter.take("s", limits)
    assert caught.value.retry_after_s == 1  # half a second, rounded up to a whole one
    now[0] = 0.5
    limiter.take("s", limits)
    now[0] = 100.0  # a long pause refills to `burst`, no more
    for _ in range(3):
        limiter.take("s", limits)
    with pytest.raises(RateLimitedError):
        limiter.take("s", limits)


def test_raw_status_of_refusals_is_rejected(client: TestClient, hub: Hub) -> None:
    client.post(EVENTS, content=b"{broken")
    assert hub.status()["raw_events"] == {RawStatus.REJECTED: 1}
