"""The record of every action taken on an exception: who asked, why, who decided, when."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from finsync.domain.status import ActionStatus
from finsync.storage import jsonutil
from finsync.storage.schema import triage_actions


def record(conn: Connection, exception_id: int, action: str, params: Mapping[str, Any],
           reason: str, actor: str, status: ActionStatus, at: datetime) -> int:
    return int(conn.execute(insert(triage_actions).returning(triage_actions.c.id).values(
        exception_id=exception_id, action=action, params=jsonutil.dumps(dict(params)),
        reason=reason, requested_by=actor, requested_at=at, status=status)).scalar_one())


def decide(conn: Connection, action_id: int, status: ActionStatus, actor: str, note: str,
           at: datetime) -> bool:
    """Approve or reject a pending action; False if it was no longer pending."""
    return bool(conn.execute(update(triage_actions).where(
        triage_actions.c.id == action_id, triage_actions.c.status == ActionStatus.PENDING_APPROVAL)
        .values(status=status, decided_by=actor, decided_at=at, decision_note=note)).rowcount)


def pending_before(conn: Connection, cutoff: datetime) -> list[dict[str, Any]]:
    """Actions still awaiting approval that were asked for before `cutoff`."""
    rows = conn.execute(select(triage_actions).where(
        triage_actions.c.status == ActionStatus.PENDING_APPROVAL,
        triage_actions.c.requested_at < cutoff).order_by(triage_actions.c.id))
    return [_public(dict(r)) for r in rows.mappings()]


def get(conn: Connection, action_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(triage_actions).where(triage_actions.c.id == action_id)) \
        .mappings().first()
    return None if row is None else _public(dict(row))


def for_exception(conn: Connection, exception_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(select(triage_actions).where(
        triage_actions.c.exception_id == exception_id).order_by(triage_actions.c.id))
    return [_public(dict(r)) for r in rows.mappings()]


def _public(row: dict[str, Any]) -> dict[str, Any]:
    row["params"] = jsonutil.loads(row["params"])
    return row


def pending(conn: Connection, limit: int) -> list[dict[str, Any]]:
    """Actions awaiting approval, the oldest first (at most `limit`)."""
    rows = conn.execute(select(triage_actions).where(
        triage_actions.c.status == ActionStatus.PENDING_APPROVAL)
        .order_by(triage_actions.c.id).limit(limit))
    return [_public(dict(r)) for r in rows.mappings()]
