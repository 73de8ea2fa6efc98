"""Group commit: concurrent requests share a transaction, each is answered after the commit
with its own id, and a refused item gets its own error while its neighbours are stored; a
request whose token is no longer active when its batch is stored is refused, alone."""

from __future__ import annotations

import json
import threading
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine

from finsync.api.app import create_app
from finsync.auth import tokens
from finsync.auth.local import NotAuthenticatedError
from finsync.auth.principal import events_write
from finsync.domain.clock import utc_now
from finsync.domain.errors import MappingError
from finsync.domain.status import RawStatus
from finsync.hub.group_commit import GroupCommit, stores_raw
from finsync.storage import raw_log
from finsync.storage.db import reading
from tests import authkit
from tests.builders import envelope, payment_doc
from tests.hubkit import make_hub


def _payment(n: int) -> bytes:
    return json.dumps(envelope("payment.applied", f"gw-{n}", ("payment", f"pay_{n}", None),
                               {"payment": payment_doc(f"pay_{n}", "10.00", f"inv_{n}")},
                               correlation_id=f"c{n}")).encode()


def test_requests_queued_during_a_commit_share_the_next_batch(engine: Engine,
                                                               tmp_path: Path) -> None:
    hub = make_hub(engine, tmp_path)
    first_committed, release = threading.Event(), threading.Event()

    def on_commit(_count: int) -> None:  # holds the writer after its first batch
        first_committed.set()
        release.wait(30)

    writer = GroupCommit(hub.intake, stores_raw(hub.intake), batch_max=64, linger_s=0,
                         on_commit=on_commit)
    with ThreadPoolExecutor(6) as pool:
        first = pool.submit(writer.receive, "canonical", _payment(0), {})
        assert first_committed.wait(30)
        rest = [pool.submit(writer.receive, "canonical", _payment(n), {}) for n in range(1, 6)]
        while writer._queue.qsize() < 5:  # all five wait behind the first commit
            threading.Event().wait(0.01)
        release.set()
        ids = [first.result(30)] + [f.result(30) for f in rest]
    writer.close()
    assert writer.batches == 2 and writer.items == 6  # 1, then the 5 that queued meanwhile
    assert len(set(ids)) == 6
    with reading(engine) as conn:
        stored = {r.id: r for r in raw_log.pending(conn, 100)}
    assert sorted(stored) == sorted(ids)
    for n, raw_id in enumerate(ids):  # each request got the id of its own body
        assert json.loads(stored[raw_id].body)["source_event_id"] == f"gw-{n}"
        assert stored[raw_id].status is RawStatus.RECEIVED


def test_a_refused_item_fails_alone(engine: Engine, tmp_path: Path) -> None:
    hub = make_hub(engine, tmp_path)
    writer = GroupCommit(hub.intake, stores_raw(hub.intake), batch_max=64, linger_s=0.05)
    bodies = [_payment(1), b"{broken", _payment(2)]
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(writer.receive, "canonical", b, {}) for b in bodies]
        good = [futures[0].result(30), futures[2].result(30)]
        with pytest.raises(MappingError) as refused:
            futures[1].result(30)
    writer.close()
    assert refused.value.code == "invalid_json"
    assert writer.items == 2 and len(set(good)) == 2


def test_the_app_answers_each_request_and_wakes_after_each_batch(engine: Engine,
                                                                   tmp_path: Path) -> None:
    woken: list[int] = []
    app = create_app(make_hub(engine, tmp_path), wake=woken.append)
    with authkit.client(app, engine) as client, ThreadPoolExecutor(8) as pool:
        bodies = [_payment(n) if n % 4 else b"[]" for n in range(16)]
        responses = list(pool.map(
            lambda b: client.post("/v1/sources/billing/events", content=b), bodies))
        writer = app.state.intake_writer
        batches = writer.batches
    codes = [r.status_code for r in responses]
    assert codes == [422 if n % 4 == 0 else 202 for n in range(16)]
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 422} == {
        "empty_batch"}
    assert len({r.json()["raw_event_id"] for r in responses if r.status_code == 202}) == 12
    assert writer.items == 12
    assert len(woken) == batches >= 1  # one wake-up per committed batch, with its count
    assert sum(woken) == 12


@pytest.mark.parametrize("where", ["before the store", "in the store's transaction"])
def test_an_item_whose_credential_fails_the_recheck_is_answered_with_its_error_alone(
        engine: Engine, tmp_path: Path, where: str) -> None:
    """An intake node rechecks before it publishes; the raw event log's store rechecks in
    the transaction that stores the batch. Either way the item is refused alone."""
    hub = make_hub(engine, tmp_path)
    asked: list[set[str]] = []

    def recheck(ids: Collection[str]) -> dict[str, Exception]:
        asked.append(set(ids))
        return {"gone": NotAuthenticatedError("API token gone is no longer active")}

    def recheck_in(conn: Connection, ids: Collection[str]) -> dict[str, Exception]:
        assert conn.in_transaction()
        return recheck(ids)

    if where == "before the store":
        writer = GroupCommit(hub.intake, stores_raw(hub.intake), batch_max=64,
                             linger_s=0.05, recheck=recheck)
    else:
        writer = GroupCommit(hub.intake, stores_raw(hub.intake, recheck_in), batch_max=64,
                             linger_s=0.05)
    named = ["kept", "gone", None]
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(writer.receive, "canonical", _payment(n), {}, token=token)
                   for n, token in enumerate(named)]
        kept = [futures[0].result(30), futures[2].result(30)]
        with pytest.raises(NotAuthenticatedError):
            futures[1].result(30)
    writer.close()
    assert writer.items == 2  # stored ones only
    assert set().union(*asked) == {"kept", "gone"}  # one look-up per batch, named ones only
    with reading(engine) as conn:
        stored = {r.id: json.loads(r.body)["source_event_id"]
                  for r in raw_log.pending(conn, 100)}
    assert stored == {kept[0]: "gw-0", kept[1]: "gw-2"}


def test_a_token_revoked_after_use_stores_nothing_more(engine: Engine,
                                                       tmp_path: Path) -> None:
    """Intake takes its token from a look-up up to a second old; the group commit's recheck
    still refuses a token revoked meanwhile, before anything is stored."""
    app = create_app(make_hub(engine, tmp_path))
    made = authkit.issued(engine, [events_write("billing")])
    with TestClient(app, headers=authkit.bearer(made.secret)) as client:
        first = client.post("/v1/sources/billing/events", content=_payment(1))
        assert first.status_code == 202
        tokens.revoke(engine, authkit.ISSUER, made.token.id, utc_now(), "test")
        after = [client.post("/v1/sources/billing/events", content=_payment(n))
                 for n in (2, 3)]
    assert [r.status_code for r in after] == [401, 401]
    assert {r.json()["error"]["code"] for r in after} == {"not_authenticated"}
    with reading(engine) as conn:
        stored = [r.id for r in raw_log.pending(conn, 100)]
    assert stored == [first.json()["raw_event_id"]]
