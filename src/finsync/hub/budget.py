"""An ERP's call budget as the hub keeps it: calls per minute as a token bucket.

Rules:
- No 60-second window holds more than `calls_per_minute` calls: the bucket holds a burst
  of `b` calls (a tenth of the minute's budget, at least one) and refills the rest,
  `calls_per_minute - b`, evenly over the minute (a bucket refilled at the full rate on top
  of its burst would let a window hold the burst twice and the ERP would refuse).
- The ERP's own word wins: after a refusal with retry-after, no call goes out before then.
- Time comes from the caller's clock, so tests step it instead of sleeping.
"""

from __future__ import annotations

from collections.abc import Callable


class CallBudget:
    def __init__(self, calls_per_minute: int | None, clock: Callable[[], float]) -> None:
        if calls_per_minute is not None and calls_per_minute < 1:
            raise ValueError("calls_per_minute must be at least 1")
        self._clock = clock
        self._unlimited = calls_per_minute is None
        per_minute = calls_per_minute or 1
        self._burst = max(1, per_minute // 10)
        self._rate_per_s = max(per_minute - self._burst, 1) / 60
        self._tokens = float(self._burst)
        self._at = clock()
        self._paused_until = self._at

    def _refill(self) -> float:
        now = self._clock()
        if now > self._at:
            self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate_per_s)
            self._at = now
        return now

    def available(self, wanted: int) -> int:
        """How many of `wanted` calls may go out now."""
        now = self._refill()
        if now < self._paused_until:
            return 0
        return wanted if self._unlimited else min(wanted, int(self._tokens + 1e-9))

    def take(self, calls: int) -> None:
        """Spend the budget of calls that go out now (at most what `available` said)."""
        self._refill()
        if not self._unlimited:
            self._tokens -= calls

    def wait_s(self) -> float:
        """Seconds until one call may go out."""
        now = self._refill()
        pause = max(0.0, self._paused_until - now)
        if self._unlimited or self._tokens >= 1 - 1e-9:
            return pause
        return max(pause, (1 - self._tokens) / self._rate_per_s)

    def pause(self, seconds: float) -> None:
        """The ERP asked to come back in `seconds` (HTTP 429 / retry-after)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)
