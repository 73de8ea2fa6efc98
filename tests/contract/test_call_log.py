"""The external-call log on SQLite and PostgreSQL: stored, listed by correlation id (a batch
call under each delivery it carried), purged by age, and a failure to log never raised."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select

from finsync.domain.call import Call, Channel, Subject
from finsync.storage import call_log
from finsync.storage.call_log import CallLog, external_call_subjects, external_calls
from finsync.storage.db import make_engine, reading, transaction

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def _call(at: datetime, *subjects: Subject, method: str = "post_invoice",
          system: str = "ledger") -> Call:
    return Call(system, Channel.PORT, method, "LedgerPort", "ok", at, 1234, subjects,
                10, 20, '{"kind":"invoice"}', '{"external_id":"je_1"}')


def _log(engine: Engine, days: int = 30) -> CallLog:
    return CallLog(engine, timedelta(days=days), lambda: NOW)


def test_a_call_reads_back_whole_under_its_correlation(engine: Engine) -> None:
    log = _log(engine)
    log.record(_call(NOW, Subject("amd_1", "evt_1:ledger")))
    (found,) = log.for_correlation("amd_1")
    assert (found.system, found.channel, found.method, found.endpoint, found.status) == (
        "ledger", "port", "post_invoice", "LedgerPort", "ok")
    assert found.started_at == NOW and found.duration_us == 1234
    assert found.idempotency_keys == ("evt_1:ledger",)
    assert (found.request_bytes, found.response_bytes) == (10, 20)
    assert found.as_json()["duration_ms"] == 1.234
    assert log.for_correlation("amd_2") == []


def test_a_batch_call_is_listed_under_each_correlation_with_its_own_keys(
        engine: Engine) -> None:
    log = _log(engine)
    log.record(_call(NOW, Subject("amd_1", "evt_1:ledger"), Subject("con_9", "evt_9:ledger"),
                     Subject("amd_1", "evt_2:ledger"), method="post_batch"))
    log.record(_call(NOW + timedelta(seconds=1), Subject("amd_1", "evt_3:revrec"),
                     method="apply_contract", system="revrec"))
    listed = log.for_correlation("amd_1")
    assert [(c.method, c.idempotency_keys) for c in listed] == [
        ("post_batch", ("evt_1:ledger", "evt_2:ledger")),
        ("apply_contract", ("evt_3:revrec",))]
    assert [c.idempotency_keys for c in log.for_correlation("con_9")] == [("evt_9:ledger",)]


def test_texts_are_cut_to_their_columns_and_made_storable(engine: Engine) -> None:
    log = _log(engine)
    long = Call("s" * 100, Channel.HTTP, "GET", "/v1/" + "x" * 2000, "200", NOW, 1,
                (Subject("c" * 300, "k\x00" * 200),), None, None, "a\x00b", None,
                "e" * 300)
    log.record(long)
    (found,) = log.for_correlation("c" * 255)
    assert len(found.system) == 64 and len(found.endpoint) == 1024
    assert found.error == "e" * 128 and found.request_excerpt == "a\\x00b"
    assert len(found.idempotency_keys[0]) == 255 and "\x00" not in found.idempotency_keys[0]


def test_the_purge_deletes_calls_past_the_retention_with_their_subjects(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(call_log, "PURGE_BATCH", 2)  # several rounds
    log = _log(engine, days=30)
    old = [NOW - timedelta(days=31, minutes=n) for n in range(5)]
    for at in old:
        log.record(_call(at, Subject("old", "k_old"), Subject("both", "k_both")))
    log.record(_call(NOW - timedelta(days=29), Subject("new", "k_new"),
                     Subject("both", "k_both")))
    assert log.purge() == 5
    assert log.for_correlation("old") == []
    assert [c.started_at for c in log.for_correlation("both")] == [NOW - timedelta(days=29)]
    with reading(engine) as conn:
        assert conn.execute(select(func.count()).select_from(external_calls)).scalar() == 1
        assert conn.execute(
            select(func.count()).select_from(external_call_subjects)).scalar() == 2
    assert log.purge() == 0


def test_a_call_that_cannot_be_logged_is_reported_not_raised(
        tmp_path: object, caplog: pytest.LogCaptureFixture) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/unmigrated.db")  # no call log tables
    try:
        with caplog.at_level(logging.ERROR, logger="finsync.storage.call_log"):
            _log(engine).record(_call(NOW, Subject("amd_1", "evt_1:ledger")))
    finally:
        engine.dispose()
    assert "missing from the evidence" in caplog.text and "amd_1" in caplog.text


def test_a_retention_must_be_positive(engine: Engine) -> None:
    with pytest.raises(ValueError, match="retention"):
        CallLog(engine, timedelta(0), lambda: NOW)


def test_append_and_lookup_share_one_transaction(engine: Engine) -> None:
    with transaction(engine) as conn:
        first = call_log.append(conn, _call(NOW, Subject("amd_1", "k1")))
        second = call_log.append(conn, _call(NOW, Subject("amd_1", "k2")))
        assert second > first
        assert [c.id for c in call_log.for_correlation(conn, "amd_1")] == [first, second]
