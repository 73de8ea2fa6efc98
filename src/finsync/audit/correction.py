"""Automatic corrections: an exception finsync resolves itself, recorded in the trail.

Rules:
- A component that resolves an exception on its own (delivery after a successful retry,
  sequencing once a gap is filled, reconciliation when a break agrees again) does it here,
  so each resolved exception gets its record, actor `system:<component>`, action
  `exception.auto_resolve`, in the transaction that resolves it.
- Nothing is recorded when nothing was resolved (the usual case on the delivery path).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from finsync.audit import trail
from finsync.audit.chain import Entry
from finsync.domain.status import ExceptionStatus
from finsync.storage import exception_log

ACTION = "exception.auto_resolve"


def resolve(conn: Connection, component: str, fingerprint: str, note: str,
            at: datetime) -> list[dict[str, Any]]:
    """Resolve the unresolved exception with this fingerprint as `system:<component>`;
    returns what was resolved (as `exception_log.resolve_by_fingerprint`)."""
    resolved = exception_log.resolve_by_fingerprint(conn, fingerprint, note, at)
    for row in resolved:
        trail.append(conn, Entry(
            f"system:{component}", ACTION, "exception", str(row["id"]), note,
            before={"status": str(row["status"])},
            after={"status": ExceptionStatus.RESOLVED.value},
            correlation_id=row["correlation_id"]), at)
    return resolved
