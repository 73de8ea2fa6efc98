"""Bounded exponential backoff with full jitter: a retry storm spreads out instead of
hammering a system that is already struggling."""

from __future__ import annotations

import random


def delay_s(attempt: int, base_s: float, cap_s: float, rng: random.Random,
            retry_after_s: float | None = None) -> float:
    """Seconds to wait before attempt `attempt + 1` (attempt counts from 1)."""
    ceiling = min(cap_s, base_s * (2 ** max(0, attempt - 1)))
    wait = rng.uniform(0, ceiling)
    # A system that says when to come back is believed, within the cap.
    return min(cap_s, max(wait, retry_after_s or 0.0))
