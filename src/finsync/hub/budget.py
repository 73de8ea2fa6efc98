"""An ERP's posting budget as every worker process shares it (DESIGN §8): calls per minute,
concurrency and a daily cap, kept in the database (`storage.posting_budget`).

Rules:
- A call goes out only with a grant: a concurrency slot (leased until the call's outcome is
  recorded, at most `lease_s`: a worker that dies gives its slot back by the lease running
  out), one call of the minute's budget and one of the day's cap. What one limit refuses,
  the others give back: a refused call costs nothing.
- A batch call is one call, whatever it carries.
- The ERP's own word wins: after a refusal with retry-after, no process calls it before
  then. Without `calls_per_minute` the pause is this process's alone (reading it before every
  call would cost each call a statement; the others get their own refusal).
- A spent daily cap waits for the next UTC day; the deliveries wait in the outbox, untried.
- No limit configured, no statement: the in-process default pays for nothing it does not use.
- Time comes from the caller's clock, so tests step it instead of sleeping.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import Connection, Engine

from finsync.storage import posting_budget as shared
from finsync.storage.db import reading, transaction

log = logging.getLogger(__name__)


class Limit(StrEnum):
    """What a call waits for."""

    CONCURRENCY = "concurrency"
    CALLS_PER_MINUTE = "calls_per_minute"
    DAILY_CAP = "daily_cap"
    RETRY_AFTER = "retry_after"


@dataclass(frozen=True, slots=True)
class Grant:
    """A call may go out; `slot` is the concurrency slot it holds until `release`."""

    slot: int | None


@dataclass(frozen=True, slots=True)
class Wait:
    """No call may go out for `seconds`, because of `limit`."""

    limit: Limit
    seconds: float


@dataclass(frozen=True, slots=True)
class Limits:
    calls_per_minute: int | None = None
    concurrency: int | None = None  # calls in flight at once, all processes together
    daily_cap: int | None = None  # calls per UTC day

    def __post_init__(self) -> None:
        for name in ("calls_per_minute", "concurrency", "daily_cap"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, not {value}")


def day_start(at: datetime) -> datetime:
    """The UTC midnight that starts `at`'s day."""
    return datetime.combine(at.astimezone(UTC).date(), datetime.min.time(), UTC)


class PostingBudget:
    def __init__(self, engine: Engine, target: str, limits: Limits,
                 clock: Callable[[], datetime], holder: str, lease_s: float) -> None:
        self._engine, self._target, self._limits = engine, target, limits
        self._clock, self._holder, self._lease_s = clock, holder, lease_s
        minute = limits.calls_per_minute
        self._bucket = None if minute is None else shared.Bucket.per_minute(minute)
        self._paused_until_s = 0.0  # this process's copy of the ERP's pause
        self._slots_made = False

    @property
    def limits(self) -> Limits:
        return self._limits

    def take(self) -> Grant | Wait:
        """One call's grant, or how long to wait (nothing taken)."""
        now = self._clock()
        if self._bucket is None and (pause := self._paused_until_s - now.timestamp()) > 0:
            return Wait(Limit.RETRY_AFTER, pause)
        if self._bucket is None and self._limits.daily_cap is None and (
                self._limits.concurrency is None):
            return Grant(None)
        with transaction(self._engine) as conn:
            slot = None
            if self._limits.concurrency is not None:
                slot = self._take_slot(conn, now)
                if slot is None:
                    return Wait(Limit.CONCURRENCY, 0.0)
            wait = self._take_calls(conn, now)
            if wait is not None and slot is not None:
                shared.release_slot(conn, self._target, slot, self._holder)
        return Grant(slot) if wait is None else wait

    def _take_slot(self, conn: Connection, now: datetime) -> int | None:
        assert self._limits.concurrency is not None
        slots = self._limits.concurrency
        expires = now + timedelta(seconds=self._lease_s)
        if not self._slots_made:
            shared.ensure_slots(conn, self._target, slots)
            self._slots_made = True
        return shared.take_slot(conn, self._target, slots, self._holder, now, expires)

    def _take_calls(self, conn: Connection, now: datetime) -> Wait | None:
        """The day's and the minute's call; None when both were taken."""
        cap = self._limits.daily_cap
        day = day_start(now)
        if cap is not None and not shared.take_day(conn, self._target, int(day.timestamp()),
                                                   cap):
            return Wait(Limit.DAILY_CAP, (day + timedelta(days=1) - now).total_seconds())
        if self._bucket is None:
            return None
        seconds = shared.take_minute(conn, self._target, self._bucket, now.timestamp())
        if seconds == 0.0:
            return None
        if cap is not None:
            shared.give_back_day(conn, self._target, int(day.timestamp()))
        paused = shared.paused_until(conn, self._target) > now.timestamp()
        return Wait(Limit.RETRY_AFTER if paused else Limit.CALLS_PER_MINUTE, seconds)

    def extend(self, grants: Sequence[Grant], until: datetime) -> None:
        """Keep the grants' concurrency slots until `until` (their calls go on)."""
        slots = [g.slot for g in grants if g.slot is not None]
        if not slots:
            return
        with transaction(self._engine) as conn:
            kept = shared.extend_slots(conn, self._target, slots, self._holder, until)
        if kept < len(slots):
            log.warning("%s: %d concurrency slot(s) ran out during a slow call; one more "
                        "call than the concurrency may be out", self._target,
                        len(slots) - kept)

    def release(self, grant: Grant) -> None:
        """The call's outcome is recorded: its slot is free."""
        if grant.slot is None:
            return
        with transaction(self._engine) as conn:
            shared.release_slot(conn, self._target, grant.slot, self._holder)

    def waiting(self) -> Wait | None:
        """Whether calls wait now for the minute's budget, the day's cap or the ERP's
        pause (a look, nothing taken; concurrency is not looked at: slots free up as calls
        end)."""
        now = self._clock()
        if self._bucket is None and (pause := self._paused_until_s - now.timestamp()) > 0:
            return Wait(Limit.RETRY_AFTER, pause)
        if self._bucket is None and self._limits.daily_cap is None:
            return None
        with reading(self._engine) as conn:
            cap = self._limits.daily_cap
            day = day_start(now)
            if cap is not None and shared.day_calls(conn, self._target,
                                                     int(day.timestamp())) >= cap:
                return Wait(Limit.DAILY_CAP, (day + timedelta(days=1) - now).total_seconds())
            if self._bucket is None:
                return None
            seconds = shared.minute_wait_s(conn, self._target, self._bucket, now.timestamp())
            if not seconds:
                return None
            paused = shared.paused_until(conn, self._target) > now.timestamp()
            return Wait(Limit.RETRY_AFTER if paused else Limit.CALLS_PER_MINUTE, seconds)

    def spend(self, calls: int) -> None:
        """Count calls made beyond their grants (a failed batch made again one by one)."""
        if calls <= 0 or (self._bucket is None and self._limits.daily_cap is None):
            return
        day = None
        if self._limits.daily_cap is not None:
            day = int(day_start(self._clock()).timestamp())
        with transaction(self._engine) as conn:
            shared.spend(conn, self._target, calls, day)

    def pause(self, seconds: float) -> None:
        """The ERP asked to come back in `seconds` (HTTP 429 / retry-after)."""
        until = self._clock().timestamp() + seconds
        self._paused_until_s = max(self._paused_until_s, until)
        with transaction(self._engine) as conn:
            shared.pause(conn, self._target, until)
