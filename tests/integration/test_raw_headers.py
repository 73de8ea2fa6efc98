"""Stored raw events keep only allowlisted headers, whichever way they arrive."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert

from finsync.api.app import create_app
from finsync.domain.status import RawStatus
from finsync.storage import raw_log
from finsync.storage.db import transaction
from finsync.storage.schema import raw_events
from tests import authkit
from tests.builders import envelope, payment_doc
from tests.hubkit import make_hub

SENT = {"Authorization": "Bearer fsk_PLANTEDrawToken00", "X-Auth-Token": "PLANTED-auth",
        "X-Api-Key": "PLANTED-key", "Cookie": "s=PLANTED", "X-Custom": "PLANTED-custom",
        "Content-Type": "application/json", "Idempotency-Key": "idem-1",
        "X-Request-Id": "req-1"}
KEPT = {"content-type": "application/json", "idempotency-key": "idem-1",
        "x-request-id": "req-1"}
AT = datetime(2026, 12, 1, tzinfo=UTC)


def test_the_sources_endpoint_stores_only_the_allowlist(engine: Engine,
                                                        tmp_path: Path) -> None:
    client = TestClient(create_app(make_hub(engine, tmp_path)))
    sent = {**SENT, "Authorization": f"Bearer {authkit.issue(engine)}"}
    body = envelope("payment.applied", "gw-h", ("payment", "pay_h", None),
                    {"payment": payment_doc("pay_h", "10.00", "inv_h")}, correlation_id="c")
    response = client.post("/v1/sources/canonical/events", content=json.dumps(body),
                           headers=sent)
    assert response.status_code == 202
    with transaction(engine) as conn:
        raw = raw_log.get(conn, response.json()["raw_event_id"])
    assert raw is not None
    added = {"content-length", "user-agent"}  # the test client's own
    assert {k: v for k, v in raw.headers.items() if k not in added} == KEPT


def test_every_writer_of_the_raw_log_applies_the_allowlist(engine: Engine) -> None:
    with transaction(engine) as conn:
        one = raw_log.append_one(conn, raw_log.RawIn("canonical", b"{}", SENT), AT)
        raw_log.append(conn, [raw_log.RawIn("canonical", b"[]", SENT)], AT)
        refused = raw_log.append_refused(conn, raw_log.RawIn("canonical", b"x", SENT), AT,
                                         "invalid_json", "Bearer fsk_PLANTEDinError0")
        rows = [raw_log.get(conn, i) for i in (one, one + 1, refused)]
    assert [r.headers for r in rows if r is not None] == [KEPT, KEPT, KEPT]


def test_headers_stored_before_the_allowlist_are_scrubbed(engine: Engine) -> None:
    legacy = {k.lower(): v for k, v in SENT.items()}
    with transaction(engine) as conn:
        conn.execute(insert(raw_events), [
            {"source": "canonical", "received_at": AT, "headers": json.dumps(legacy),
             "body": b"{}", "status": RawStatus.RECEIVED} for _ in range(3)])
        assert raw_log.scrub_headers(conn, batch=2) == 3
        assert raw_log.scrub_headers(conn) == 0  # nothing left to change
        stored = [raw_log.get(conn, i) for i in (1, 2, 3)]
    assert [r.headers for r in stored if r is not None] == [KEPT, KEPT, KEPT]
