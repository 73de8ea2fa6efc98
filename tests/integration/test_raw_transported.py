"""Raw events handed over by the transport (the archiver's batches) are stored as any other
raw event, once per message id, in the batch's order (COPY through a staging table on
PostgreSQL, one multi-row statement on SQLite)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from finsync.storage import raw_log
from finsync.storage.db import transaction
from finsync.storage.raw_log import RawEvent, RawIn, Transported

AT = datetime(2026, 12, 7, 3, 4, 5, 678901, tzinfo=UTC)
ODD = b"\x00\xff\xfe{\"a\": \"\\u0000\"}\r\n\t\\N"  # NUL, bytes no UTF-8 reads, COPY's escapes


def _item(n: int, body: bytes = b"{}") -> RawIn:
    return RawIn("billing", body, {"Content-Type": "application/json", "Authorization": "x",
                                   "X-Request-Id": f"r{n}"}, "application/json" + "x" * 200)


def _read(engine: Engine, ids: list[int]) -> list[RawEvent]:
    with transaction(engine) as conn:
        found = raw_log.get_many(conn, ids)
    return [found[i] for i in ids]


def test_a_batch_is_stored_as_the_same_events_stored_directly_would_be(engine: Engine) -> None:
    items = [_item(n, ODD if n % 2 else f'{{"n": {n}}}'.encode()) for n in range(5)]
    with transaction(engine) as conn:
        direct = raw_log.append_ids(conn, items, AT)
        ids = raw_log.append_transported(conn, [
            Transported(f"billing/e{n}#h", item, AT) for n, item in enumerate(items)])
    assert list(ids) == [f"billing/e{n}#h" for n in range(5)]
    transported = list(ids.values())
    assert transported == sorted(transported)  # the batch's order
    for mine, theirs in zip(_read(engine, transported), _read(engine, direct), strict=True):
        assert (mine.source, mine.received_at, mine.headers, mine.body, mine.status) == (
            theirs.source, theirs.received_at, theirs.headers, theirs.body, theirs.status)


def test_a_message_id_is_stored_once_within_a_batch_and_across_batches(engine: Engine) -> None:
    first = [Transported("m/1", _item(1), AT), Transported("m/2", _item(2), AT),
             Transported("m/1", _item(1, b'{"other": 1}'), AT)]
    with transaction(engine) as conn:
        stored = raw_log.append_transported(conn, first)
    assert list(stored) == ["m/1", "m/2"]
    again = [Transported("m/2", _item(2), AT + timedelta(seconds=1)),
             Transported("m/3", _item(3), AT)]
    with transaction(engine) as conn:
        more = raw_log.append_transported(conn, again)
        held = raw_log.by_transport_ids(conn, ["m/1", "m/2", "m/3"])
    assert list(more) == ["m/3"]
    assert {tid: raw_id for tid, (raw_id, _) in held.items()} == stored | more
    assert _read(engine, [stored["m/1"]])[0].body == b"{}"  # the first one stands
