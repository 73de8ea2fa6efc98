"""The hub's guarantees, end to end through real storage and a real file-drop ledger,
on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import random
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from finsync.domain.errors import ExceptionClass
from finsync.hub.replay import ReplayFilter
from finsync.storage import raw_log
from finsync.storage.db import transaction
from tests.builders import envelope, lifecycle_stream, payment_doc
from tests.hubkit import books, ingest, make_hub

STREAM = lifecycle_stream(customers=2, amendments=2)
LINES = STREAM.lines()


def _books_for(engine: Engine, exports: Path, lines: list[bytes]) -> tuple[dict, int]:
    hub = make_hub(engine, exports)
    ingest(hub, lines)
    hub.run_until_idle()
    return books(hub, exports), hub.status()["duplicates_ignored"]


def _reset(engine: Engine) -> None:
    from sqlalchemy import delete

    from finsync.storage.schema import metadata

    with transaction(engine) as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(delete(table))


def test_stream_in_order_delivers_every_posting_once(engine: Engine, tmp_path: Path) -> None:
    result, duplicates = _books_for(engine, tmp_path / "x", LINES)
    posted = [json.loads(d) for d in result["documents"]]
    assert duplicates == 0
    assert len(posted) == 12  # 2 customers x 3 versions x (invoice + payment)
    assert len({p["key"] for p in posted}) == len(posted)
    assert all(status == "done" for _, status, _ in result["deliveries"])
    assert len(result["cross_refs"]) == 12


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), twice=st.booleans())
def test_shuffled_and_duplicated_stream_leaves_identical_books(
        engine: Engine, tmp_path: Path, seed: int, twice: bool) -> None:
    _reset(engine)
    expected, _ = _books_for(engine, tmp_path / f"a{seed}", LINES)
    _reset(engine)
    rng = random.Random(seed)
    extra = list(LINES) if twice else rng.sample(LINES, k=5)
    sent = [*LINES, *extra]
    rng.shuffle(sent)
    got, duplicates = _books_for(engine, tmp_path / f"b{seed}", sent)
    assert duplicates == len(extra)
    assert got["documents"] == expected["documents"]
    assert got["cross_refs"] == expected["cross_refs"]
    assert [(k, s) for k, s, _ in got["deliveries"]] == \
        [(k, s) for k, s, _ in expected["deliveries"]]


def test_ingesting_the_stream_twice_counts_every_duplicate(engine: Engine,
                                                           tmp_path: Path) -> None:
    hub = make_hub(engine, tmp_path)
    ingest(hub, LINES)
    hub.run_until_idle()
    first = books(hub, tmp_path)
    ingest(hub, LINES)
    hub.run_until_idle()
    assert hub.status()["duplicates_ignored"] == len(LINES)
    assert books(hub, tmp_path) == first


def test_business_idempotency_key_dedupes_a_resent_event(engine: Engine,
                                                         tmp_path: Path) -> None:
    hub = make_hub(engine, tmp_path)
    doc = {"payment": payment_doc("pay_9", "10.00", "inv_9")}
    a = envelope("payment.applied", "gw-1", ("payment", "pay_9", None), doc,
                 correlation_id="c", business_key="pay_9")
    b = {**a, "source_event_id": "gw-1-retry"}
    ingest(hub, [json.dumps(a).encode(), json.dumps(b).encode()])
    hub.run_until_idle()
    assert hub.status()["duplicates_ignored"] == 1
    assert hub.status()["deliveries"] == {"done": 1}


def test_replay_changes_nothing_where_effects_exist(engine: Engine, tmp_path: Path) -> None:
    hub = make_hub(engine, tmp_path)
    ingest(hub, LINES)
    hub.run_until_idle()
    before = books(hub, tmp_path)
    result = hub.replay(ReplayFilter(everything=True))
    summary = hub.run_until_idle()
    assert result.requeued == len(before["deliveries"])
    assert summary.deliveries_attempted == len(before["deliveries"])
    after = books(hub, tmp_path)
    assert after["documents"] == before["documents"]
    assert after["cross_refs"] == before["cross_refs"]


def test_replay_by_correlation_id_resends_only_its_deliveries(engine: Engine,
                                                              tmp_path: Path) -> None:
    hub = make_hub(engine, tmp_path)
    ingest(hub, LINES)
    hub.run_until_idle()
    result = hub.replay(ReplayFilter(correlation_id="con_0-v2"))
    assert (result.events, result.requeued) == (3, 2)  # amendment (unrouted), invoice, payment


def test_unparseable_payload_is_kept_and_opens_mapping_error(engine: Engine,
                                                            tmp_path: Path) -> None:
    hub = make_hub(engine, tmp_path)
    ingest(hub, [b"{definitely not json", json.dumps({"type": "nope"}).encode()])
    hub.run_until_idle()
    with transaction(engine) as conn:
        assert raw_log.counts(conn) == {"rejected": 2}
        kept = raw_log.get(conn, 1)
    assert kept is not None and kept.body == b"{definitely not json"
    errors = hub.exceptions()
    assert [e["class"] for e in errors] == [ExceptionClass.MAPPING_ERROR] * 2
    assert errors[0]["raw_event_id"] == 1


def test_change_from_a_non_owner_opens_ownership_violation(engine: Engine,
                                                          tmp_path: Path) -> None:
    hub = make_hub(engine, tmp_path)
    doc = {"payment": payment_doc("pay_1", "10.00", "inv_1")}
    ingest(hub, [json.dumps(envelope("payment.applied", "crm-1", ("payment", "pay_1", None),
                                     doc, correlation_id="c", source="crm")).encode()])
    hub.run_until_idle()
    (error,) = hub.exceptions()
    assert error["class"] == ExceptionClass.OWNERSHIP_VIOLATION
    assert hub.status()["deliveries"] == {}


def test_source_supplied_event_id_is_ignored(engine: Engine, tmp_path: Path) -> None:
    hub = make_hub(engine, tmp_path)
    doc = {"payment": payment_doc("pay_1", "10.00", "inv_1")}
    owner = envelope("payment.applied", "gw-1", ("payment", "pay_1", None), doc,
                     correlation_id="c")
    forged = {**owner, "source": "crm", "source_event_id": "crm-1", "event_id": "evt_taken"}
    ingest(hub, [json.dumps({**owner, "event_id": "evt_taken"}).encode(),
                 json.dumps(forged).encode()])
    hub.run_until_idle()
    assert hub.status()["events"] == {"accepted": 1, "rejected": 1}
    (error,) = hub.exceptions()
    assert error["class"] == ExceptionClass.OWNERSHIP_VIOLATION


def test_non_owner_reusing_a_business_key_is_a_violation_not_a_duplicate(
        engine: Engine, tmp_path: Path) -> None:
    hub = make_hub(engine, tmp_path)
    doc = {"payment": payment_doc("pay_1", "10.00", "inv_1")}
    owner = envelope("payment.applied", "gw-1", ("payment", "pay_1", None), doc,
                     correlation_id="c", business_key="pay_1")
    forged = {**owner, "source": "crm", "source_event_id": "crm-1"}
    ingest(hub, [json.dumps(owner).encode(), json.dumps(forged).encode(),
                 json.dumps(forged).encode()])
    hub.run_until_idle()
    assert hub.status()["duplicates_ignored"] == 1  # the forged copy sent twice
    (error,) = hub.exceptions()
    assert error["class"] == ExceptionClass.OWNERSHIP_VIOLATION
