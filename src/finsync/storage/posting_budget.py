"""The ERP posting budget in the database, so that every worker process on every machine
spends one budget (DESIGN §8: calls per minute, concurrency, daily cap).

Rules:
- Every take is one conditional statement (UPDATE … WHERE there is room … RETURNING, or
  INSERT … ON CONFLICT DO UPDATE … WHERE there is room): PostgreSQL re-checks the condition
  on the row it locked, SQLite runs write transactions one at a time (`BEGIN IMMEDIATE`), so
  two processes racing for the last call cannot both get it.
- Calls per minute are a token bucket in one row (`window` = minute): a burst of a tenth
  of the minute's calls (at least one), the rest refilled evenly over the minute, so no
  60-second window holds more than `calls_per_minute` calls (a bucket refilled at the full
  rate on top of its burst would let a window hold the burst twice). The same row holds the
  ERP's own pause (retry-after): no call of any process goes out before it.
- The daily cap counts calls per UTC day (`window` = day, `window_start` = the day's first
  second); a day's row is made by its first call.
- Concurrency slots are leases (`posting_slots`): a call holds one, its holder gives it
  back; a holder that dies leaves a lease that runs out, and the slot is free again.
- Time is epoch seconds from the caller's clock (tests step it).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Float, bindparam, case, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement

from finsync.storage.schema import posting_budget, posting_slots

MINUTE = "minute"
DAY = "day"
_EPSILON = 1e-9  # tokens are floats: 0.9999999 of a token is one
_SLOT_RACES_MAX = 4  # another process took the slot we chose: choose again, this often

_t = posting_budget
_now = bindparam("b_now", type_=Float)
_rate = bindparam("b_rate", type_=Float)
_burst = bindparam("b_burst", type_=Float)
_elapsed = case((_now > _t.c.refilled_at_s, _now - _t.c.refilled_at_s), else_=0.0)
_refilled = _t.c.tokens + _elapsed * _rate
_available = case((_refilled > _burst, _burst), else_=_refilled)
_MINUTE_ROW = (_t.c.target == bindparam("b_target"), _t.c.window == MINUTE,
               _t.c.window_start == 0)
_TAKE_MINUTE = update(_t).where(
    *_MINUTE_ROW, func.coalesce(_t.c.paused_until_s, 0.0) <= _now,
    _available >= 1 - _EPSILON).values(
    tokens=_available - 1,
    refilled_at_s=case((_now > _t.c.refilled_at_s, _now), else_=_t.c.refilled_at_s),
    calls=_t.c.calls + 1).returning(_t.c.calls)


@dataclass(frozen=True, slots=True)
class Bucket:
    """A calls-per-minute budget as a token bucket (see the rules)."""

    burst: int
    rate_per_s: float

    @classmethod
    def per_minute(cls, calls_per_minute: int) -> Bucket:
        if calls_per_minute < 1:
            raise ValueError("calls_per_minute must be at least 1")
        burst = max(1, calls_per_minute // 10)
        return cls(burst, max(calls_per_minute - burst, 1) / 60)


def _insert(conn: Connection) -> postgresql.Insert | sqlite.Insert:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(_t)
    return sqlite.insert(_t)


def take_minute(conn: Connection, target: str, bucket: Bucket, now_s: float) -> float:
    """Take one call of the minute's budget: 0.0 when taken, else the seconds until one
    may go out (the bucket refills, or the ERP's pause ends)."""
    params = {"b_target": target, "b_now": now_s, "b_rate": bucket.rate_per_s,
              "b_burst": float(bucket.burst)}
    if conn.execute(_TAKE_MINUTE, params).first() is not None:
        return 0.0
    if (wait := minute_wait_s(conn, target, bucket, now_s)) is None:  # the first call
        conn.execute(_insert(conn).values(
            target=target, window=MINUTE, window_start=0, calls=0, tokens=float(bucket.burst),
            refilled_at_s=now_s, paused_until_s=0.0).on_conflict_do_nothing())
        return take_minute(conn, target, bucket, now_s)
    return max(wait, _EPSILON)


def minute_wait_s(conn: Connection, target: str, bucket: Bucket, now_s: float) -> float | None:
    """Seconds until the minute's budget has a call (0.0: now), or None when the target
    has no bucket yet (a full one comes with its first call)."""
    row = conn.execute(select(_t.c.tokens, _t.c.refilled_at_s, _t.c.paused_until_s)
                       .where(*_MINUTE_ROW), {"b_target": target}).first()
    if row is None:
        return None
    tokens, refilled_at = float(row.tokens), float(row.refilled_at_s)
    paused = float(row.paused_until_s or 0.0)
    available = min(bucket.burst, tokens + max(0.0, now_s - refilled_at) * bucket.rate_per_s)
    refill_s = 0.0
    if available < 1 - _EPSILON:
        # Up to the next whole microsecond and one more: a clock's datetime has no finer
        # grain, and epoch seconds as a float lose a quarter of one.
        refill_s = (math.floor((1 - available) / bucket.rate_per_s * 1e6) + 2) / 1e6
    return max(refill_s, paused - now_s, 0.0)


def spend(conn: Connection, target: str, calls: int, day_start_s: int | None) -> None:
    """Count calls made beyond their grants (a batch made again document by document): the
    bucket may go below zero and the day past its cap, so the next calls wait longer."""
    conn.execute(update(_t).where(*_MINUTE_ROW).values(
        tokens=_t.c.tokens - calls, calls=_t.c.calls + calls), {"b_target": target})
    if day_start_s is None:
        return
    stmt = _insert(conn).values(target=target, window=DAY, window_start=day_start_s,
                                calls=calls)
    conn.execute(stmt.on_conflict_do_update(
        index_elements=[_t.c.target, _t.c.window, _t.c.window_start],
        set_={"calls": _t.c.calls + calls}))


def pause(conn: Connection, target: str, until_s: float) -> None:
    """The ERP asked to come back later (HTTP 429 / retry-after): no process calls it
    before `until_s`."""
    stmt = _insert(conn).values(target=target, window=MINUTE, window_start=0, calls=0,
                                tokens=1.0, refilled_at_s=until_s, paused_until_s=until_s)
    later = case((stmt.excluded.paused_until_s > func.coalesce(_t.c.paused_until_s, 0.0),
                  stmt.excluded.paused_until_s), else_=_t.c.paused_until_s)
    conn.execute(stmt.on_conflict_do_update(
        index_elements=[_t.c.target, _t.c.window, _t.c.window_start],
        set_={"paused_until_s": later}))


def paused_until(conn: Connection, target: str) -> float:
    """The end of the ERP's pause (epoch seconds; 0.0 when it never asked for one)."""
    value = conn.execute(select(_t.c.paused_until_s).where(*_MINUTE_ROW),
                         {"b_target": target}).scalar()
    return float(value or 0.0)


def take_day(conn: Connection, target: str, day_start_s: int, cap: int) -> bool:
    """Count one call against the day's cap; False (nothing counted) when it is reached."""
    stmt = _insert(conn).values(target=target, window=DAY, window_start=day_start_s, calls=1)
    stmt = stmt.on_conflict_do_update(
        index_elements=[_t.c.target, _t.c.window, _t.c.window_start],
        set_={"calls": _t.c.calls + 1}, where=_t.c.calls < cap)
    return conn.execute(stmt.returning(_t.c.calls)).first() is not None


def give_back_day(conn: Connection, target: str, day_start_s: int) -> None:
    """Return a call counted but not made."""
    conn.execute(update(_t).where(_t.c.target == target, _t.c.window == DAY,
                                  _t.c.window_start == day_start_s, _t.c.calls > 0)
                 .values(calls=_t.c.calls - 1))


def day_calls(conn: Connection, target: str, day_start_s: int) -> int:
    """Calls made to `target` on the day starting at `day_start_s`."""
    value = conn.execute(select(_t.c.calls).where(
        _t.c.target == target, _t.c.window == DAY, _t.c.window_start == day_start_s)).scalar()
    return int(value or 0)


def _free(now: datetime) -> ColumnElement[bool]:
    return or_(posting_slots.c.holder.is_(None), posting_slots.c.expires_at < now)


def take_slot(conn: Connection, target: str, slots: int, holder: str, now: datetime,
              expires_at: datetime) -> int | None:
    """Lease one of the target's `slots` concurrency slots to `holder` until `expires_at`
    (or until given back); None when all are held (or not made yet: `ensure_slots`)."""
    free = _free(now)
    for _ in range(_SLOT_RACES_MAX):
        chosen = conn.execute(select(posting_slots.c.slot).where(
            posting_slots.c.target == target, posting_slots.c.slot < slots, free)
            .order_by(posting_slots.c.slot).limit(1)).scalar()
        if chosen is None:
            return None
        taken = conn.execute(update(posting_slots).where(
            posting_slots.c.target == target, posting_slots.c.slot == chosen, free)
            .values(holder=holder, expires_at=expires_at)
            .returning(posting_slots.c.slot)).scalar()
        if taken is not None:
            return int(taken)
    return None


def ensure_slots(conn: Connection, target: str, slots: int) -> None:
    """Make the target's slots that are not there yet (free)."""
    rows = [{"target": target, "slot": n, "holder": None, "expires_at": None}
            for n in range(slots)]
    if conn.dialect.name == "postgresql":
        conn.execute(postgresql.insert(posting_slots).on_conflict_do_nothing(), rows)
    else:
        conn.execute(sqlite.insert(posting_slots).on_conflict_do_nothing(), rows)


def extend_slots(conn: Connection, target: str, slots: Collection[int], holder: str,
                 expires_at: datetime) -> int:
    """Keep `holder`'s leases of `slots` until `expires_at`; how many it still held."""
    return int(conn.execute(update(posting_slots).where(
        posting_slots.c.target == target, posting_slots.c.slot.in_(list(slots)),
        posting_slots.c.holder == holder).values(expires_at=expires_at)).rowcount)


def release_slot(conn: Connection, target: str, slot: int, holder: str) -> bool:
    """Give a slot back; False when its lease had run out and another holder took it."""
    return bool(conn.execute(update(posting_slots).where(
        posting_slots.c.target == target, posting_slots.c.slot == slot,
        posting_slots.c.holder == holder).values(holder=None, expires_at=None)).rowcount)


def held_slots(conn: Connection, target: str, now: datetime) -> Sequence[str]:
    """The holders of the target's live slot leases."""
    return [str(h) for h in conn.execute(select(posting_slots.c.holder).where(
        posting_slots.c.target == target, posting_slots.c.holder.is_not(None),
        posting_slots.c.expires_at >= now).order_by(posting_slots.c.slot)).scalars()]
