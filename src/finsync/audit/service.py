"""The audit trail as the entry points use it: read, verify, sign, export."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from finsync.audit import checkpoint, coverage, export, verify
from finsync.audit.checkpoint import Checkpoint
from finsync.audit.signing import Keyring
from finsync.storage.db import reading, transaction

PAGE_MAX = 1_000


class AuditTrail:
    def __init__(self, engine: Engine, keys: Keyring, clock: Callable[[], datetime]) -> None:
        self.engine, self.keys, self._clock = engine, keys, clock

    @property
    def signs(self) -> bool:
        return self.keys.signer is not None

    def records(self, after: int = 0, limit: int = 100) -> dict[str, Any]:
        """Up to `limit` (at most `PAGE_MAX`) records after seq `after`, and the `after` of
        the next page (None at the end)."""
        limit = max(1, min(limit, PAGE_MAX))
        with reading(self.engine) as conn:
            page = list(verify.records(conn, after=after, limit=limit + 1))
        more = len(page) > limit
        page = page[:limit]
        return {"records": page, "next_after": int(page[-1]["seq"]) if more else None}

    def verify(self) -> verify.Verdict:
        # One snapshot: a checkpoint or a triage action committed during the walk must not
        # be read against records read before it.
        with reading(self.engine, snapshot=True) as conn:
            return verify.verify(conn, self.keys)

    def checkpoint(self, reason: str) -> Checkpoint:
        return checkpoint.sign(self.engine, self.keys, reason, self._clock())

    def checkpoint_if_signing(self, reason: str) -> Checkpoint | None:
        """A checkpoint when this host holds the signing key; None otherwise (verify then
        reports that nothing is signed)."""
        return self.checkpoint(reason) if self.signs else None

    def daily(self, _day: date) -> Checkpoint | None:
        """The daily job's checkpoint (the day is the job's; the head is signed now)."""
        return self.checkpoint_if_signing(checkpoint.DAILY)

    def export(self, start: date, end: date, directory: Path) -> export.Pack:
        with reading(self.engine, snapshot=True) as conn:
            return export.export(conn, self.keys, start, end, directory, self._clock())

    def adopt(self) -> dict[str, int]:
        """Record, once, the legacy log rows written before the trail (`coverage.adopt`)."""
        with transaction(self.engine) as conn:
            return coverage.adopt(conn, self._clock())
