"""Consumer tracking: a consumer writes `(consumer, key)` in the same transaction as its
effect, so a redelivered message finds the row and returns the first outcome instead of
acting twice. A different body under a used key is refused: it is not the same message.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from finsync.domain.errors import DomainError
from finsync.storage import jsonutil
from finsync.storage.schema import consumer_tracking


class IdempotencyConflictError(DomainError):
    code = "idempotency_conflict"


def seen(conn: Connection, consumer: str, key: str, body: Any) -> Any | None:
    """The recorded result for this key, or None when the message is new."""
    row = conn.execute(select(consumer_tracking.c.body_hash, consumer_tracking.c.result).where(
        consumer_tracking.c.consumer == consumer, consumer_tracking.c.key == key)).first()
    if row is None:
        return None
    if row[0] != jsonutil.digest(body):
        raise IdempotencyConflictError(f"{consumer}: key {key!r} was used for another body")
    return jsonutil.loads(row[1])


def track(conn: Connection, consumer: str, key: str, body: Any, result: Any,
          at: datetime) -> None:
    conn.execute(insert(consumer_tracking).values(
        consumer=consumer, key=key, body_hash=jsonutil.digest(body),
        result=jsonutil.dumps(result), recorded_at=at))


def tracked(conn: Connection, consumer: str, keys: Collection[str]) -> set[str]:
    """Which of these keys `consumer` recorded already (one statement)."""
    if not keys:
        return set()
    return {str(k) for k in conn.execute(select(consumer_tracking.c.key).where(
        consumer_tracking.c.consumer == consumer,
        consumer_tracking.c.key.in_(sorted(set(keys))))).scalars()}


def track_many(conn: Connection, consumer: str, entries: Sequence[tuple[str, Any, Any]],
               at: datetime) -> None:
    """`track` for many `(key, body, result)` (one executemany)."""
    if entries:
        conn.execute(insert(consumer_tracking), [
            {"consumer": consumer, "key": key, "body_hash": jsonutil.digest(body),
             "result": jsonutil.dumps(result), "recorded_at": at}
            for key, body, result in entries])
