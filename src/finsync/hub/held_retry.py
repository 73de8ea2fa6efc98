"""The periodic retry of invoices held for tax (a thread of `finsync serve`).

Rules:
- It asks billing (`HeldInvoicePort.retry_held`) to try again each held draft whose
  `tax_failure` exception is `retrying` (a transient cause, or finance asked for a retry
  that billing could not be given); an `open` one waits for a person (master data first).
- Each draft on a bounded backoff: the first retry after `delay_s(1)` from the hold, each
  next one after `delay_s(n)` from the last, with full jitter, never more than `cap_s`
  apart. At most `batch_max` drafts are asked per iteration. The attempts are counted in
  this process; a restart starts them again from the hold's last update.
- One draft that billing cannot take now (a `ConnectorError`) is logged and tried again
  after its next delay; the other drafts are asked all the same.
- Billing answers through its events (a release or a new hold, taken in by the pipeline):
  this job changes no exception itself.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine

from finsync.connectors.ports import HeldInvoicePort
from finsync.domain.errors import ConnectorError, ExceptionClass
from finsync.domain.status import ExceptionStatus
from finsync.hub import held_invoice
from finsync.hub.backoff import delay_s
from finsync.hub.pipeline import describe
from finsync.storage import exception_log
from finsync.storage.db import reading

log = logging.getLogger(__name__)

HELD_RETRY = "finsync-held-retry"
LISTING_MAX = 500  # held drafts looked at per iteration


@dataclass(frozen=True, slots=True)
class HeldRetryPolicy:
    base_s: float = 30.0
    cap_s: float = 900.0
    batch_max: int = 50


@dataclass(slots=True)
class _Schedule:
    attempts: int
    next_at: datetime


class HeldRetry:
    def __init__(self, engine: Engine, port: HeldInvoicePort, clock: Callable[[], datetime],
                 policy: HeldRetryPolicy | None = None,
                 rng: random.Random | None = None) -> None:
        self._engine, self._port, self._clock = engine, port, clock
        self.policy = policy or HeldRetryPolicy()
        self._rng = rng or random.Random()
        self._schedules: dict[str, _Schedule] = {}

    def step(self, progressed: Callable[[], None]) -> int:
        """One iteration: ask billing about every due draft (up to `batch_max`); returns
        how many were asked."""
        now = self._clock()
        due = self.due(now)
        for draft in due:
            self._ask(draft)
            progressed()
        return len(due)

    def due(self, now: datetime) -> list[str]:
        """The held drafts to ask about now, and the schedule of each retrying one (drafts
        no longer retrying are forgotten)."""
        with reading(self._engine) as conn:
            rows = exception_log.listing(conn, status=ExceptionStatus.RETRYING,
                                         exception_class=ExceptionClass.TAX_FAILURE,
                                         limit=LISTING_MAX)
        retrying = {draft: row["updated_at"] for row in rows
                    if (draft := held_invoice.draft_of(row)) is not None}
        for gone in set(self._schedules) - set(retrying):
            del self._schedules[gone]
        for draft, held_at in retrying.items():
            if draft not in self._schedules:
                self._schedules[draft] = _Schedule(0, held_at + self._delay(1))
        chosen = sorted((s.next_at, d) for d, s in self._schedules.items() if s.next_at <= now)
        return [draft for _at, draft in chosen[:self.policy.batch_max]]

    def _ask(self, draft: str) -> None:
        schedule = self._schedules[draft]
        schedule.attempts += 1
        schedule.next_at = self._clock() + self._delay(schedule.attempts + 1)
        try:
            answer = self._port.retry_held(draft)
        except ConnectorError as exc:
            log.warning("held draft %s: %s could not be asked to retry it (attempt %d; next "
                        "at %s): %s", draft, self._port.system, schedule.attempts,
                        schedule.next_at.isoformat(), describe(exc))
            return
        if any(held == draft for held, _invoice in answer.issued):
            log.info("held draft %s issued by %s on retry %d", draft, self._port.system,
                     schedule.attempts)

    def _delay(self, attempt: int) -> timedelta:
        return timedelta(seconds=delay_s(attempt, self.policy.base_s, self.policy.cap_s,
                                         self._rng))
