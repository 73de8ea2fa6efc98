"""The exception queue as finance reads it: the filtered queue, one exception's context and
the actions waiting for a second person.

Rules:
- The queue is chosen in the database (status, class, entity, currency, age, amount) and
  sorted by money at stake, the largest first, then the oldest; exceptions without an
  amount come last. Amounts of different currencies compare as numbers (there is no FX
  rate here): filter by currency to compare like with like. Its count and money at stake
  (per currency, unresolved only) cover every match; its rows are at most `limit`.
- An exception's entity is the one its event's document names, or its reconciliation
  break's; an exception that names neither (a body that was never mapped) has none and
  is not in a queue filtered by entity.
- An exception's context: the body the source sent and the canonical document it was
  mapped to (both redacted without pii:read, `hub.exception_view`), the events of its
  correlation id (at most `event_log.CHAIN_MAX`), and its event's deliveries with their
  attempts and last error.
- The actions offered follow triage's own rules (`service.py`): none once resolved or
  while one awaits approval; `reroute` for a closed_period delivery; `resolve_duplicate`
  (and no retry) for a duplicate_event; `retry` when there is something to send again.
  Offering is a hint for the page: the action itself checks again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine

from finsync.domain.errors import ExceptionClass
from finsync.domain.status import UNRESOLVED, ExceptionStatus
from finsync.hub import exception_view
from finsync.hub.status import AtStake, at_stake_groups, at_stake_total
from finsync.storage import event_log, outbox, triage_log
from finsync.storage import exception_log as log
from finsync.storage.db import reading
from finsync.storage.exception_log import QueueQuery
from finsync.triage.policy import Action

QUEUE_MAX = 500
PENDING_MAX = 500
RESOLVE_DUPLICATE = "resolve_duplicate"  # the command; its action is stored as choose_body
RECON_PREFIX = "recon:"

__all__ = ["QUEUE_MAX", "QueuePage", "QueueQuery", "QueueReader", "offered"]


@dataclass(frozen=True, slots=True)
class QueuePage:
    """The rows of one queue (each with its `entity` and `age_s`), and every match's count
    and money at stake."""

    rows: list[dict[str, Any]]
    groups: tuple[AtStake, ...]

    @property
    def count(self) -> int:
        return sum(g.count for g in self.groups)

    def at_stake(self) -> dict[str, str]:
        unresolved = [g for g in self.groups if g.status in UNRESOLVED]
        return {currency: str(m.amount) for currency, m in at_stake_total(unresolved).items()}


class QueueReader:
    def __init__(self, engine: Engine, clock: Callable[[], datetime]) -> None:
        self._engine, self._clock = engine, clock

    def queue(self, query: QueueQuery, *, limit: int = QUEUE_MAX,
              can_read_pii: bool = False) -> QueuePage:
        with reading(self._engine) as conn:
            rows = log.queue(conn, query, min(limit, QUEUE_MAX))
            groups = at_stake_groups(log.queue_totals(conn, query))
            entities = event_log.document_entities(
                conn, {r["event_id"] for r in rows if r["event_id"]})
        now = self._clock()
        shown = []
        for row in rows:
            row["entity"] = _entity(row, entities)
            row["age_s"] = _age_s(row, now)
            shown.append(exception_view.texts(row, can_read_pii))
        return QueuePage(shown, groups)

    def context(self, row: dict[str, Any], *, can_read_pii: bool) -> dict[str, Any]:
        """The raw body, the mapped document, the correlation chain and the deliveries of
        the exception `row` (as `Triage.show` returns it)."""
        with reading(self._engine) as conn:
            raw, document = exception_view.raw_and_document(conn, row, can_read_pii)
            chain = (event_log.chain(conn, row["correlation_id"])
                     if row["correlation_id"] else [])
            deliveries = _deliveries(conn, row["event_id"]) if row["event_id"] else []
            entities = event_log.document_entities(
                conn, [row["event_id"]] if row["event_id"] else [])
        return {"raw_payload": raw, "document": document,
                "entity": _entity(row, entities),
                "correlation_chain": [_chain_json(e) for e in chain],
                "deliveries": [_delivery_json(d, can_read_pii) for d in deliveries]}

    def pending(self, *, limit: int = PENDING_MAX) -> list[dict[str, Any]]:
        """Actions awaiting approval, the oldest first, each with its exception."""
        with reading(self._engine) as conn:
            actions = triage_log.pending(conn, min(limit, PENDING_MAX))
            found = {a["exception_id"]: log.get(conn, a["exception_id"]) for a in actions}
        return [{**action, "exception": found[action["exception_id"]]} for action in actions]


def offered(row: dict[str, Any]) -> list[str]:
    """The actions that apply to the exception `row` now (see the module's rules)."""
    if row["status"] not in UNRESOLVED or row["status"] == ExceptionStatus.AWAITING_APPROVAL:
        return []
    closing = [Action.RESOLVE.value, Action.IGNORE.value]
    if row["class"] == ExceptionClass.DUPLICATE_EVENT:
        return [RESOLVE_DUPLICATE, *closing]
    sendable = bool(row["delivery_id"] or row["raw_event_id"])
    again = [Action.RETRY.value] if sendable else []
    if row["class"] == ExceptionClass.CLOSED_PERIOD and row["delivery_id"]:
        again.append(Action.REROUTE.value)
    return [*again, *closing]


def _entity(row: dict[str, Any], entities: dict[str, str]) -> str | None:
    if row["event_id"] in entities:
        return entities[row["event_id"]]
    fingerprint = str(row["fingerprint"])
    is_break = row["class"] == ExceptionClass.RECONCILIATION_BREAK
    if not is_break or not fingerprint.startswith(RECON_PREFIX):
        return None
    return fingerprint.removeprefix(RECON_PREFIX).split(":", 1)[0]


def _age_s(row: dict[str, Any], now: datetime) -> int:
    end = row["resolved_at"] or now
    return int((end - row["opened_at"]).total_seconds())


def _deliveries(conn: Connection, event_id: str) -> list[dict[str, Any]]:
    found = [outbox.get(conn, i) for i in sorted(outbox.event_statuses(conn, [event_id]))]
    return [d for d in found if d is not None]


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _chain_json(event: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": event["event_id"], "type": event["type"], "source": event["source"],
            "source_event_id": event["source_event_id"],
            "occurred_at": _iso(event["occurred_at"]),
            "received_at": _iso(event["received_at"]), "causation_id": event["causation_id"],
            "aggregate": {"type": event["aggregate_type"], "id": event["aggregate_id"],
                          "version": event["aggregate_version"]},
            "status": event["status"], "raw_event_id": event["raw_event_id"]}


def _delivery_json(delivery: dict[str, Any], can_read_pii: bool) -> dict[str, Any]:
    error = delivery["last_error"]
    if error is not None and not can_read_pii:
        error = exception_view.texts({"detail": error}, False)["detail"]
    return {"id": delivery["id"], "target": delivery["target"],
            "delivery_key": delivery["delivery_key"], "status": delivery["status"],
            "attempts": delivery["attempts"], "lease_expiries": delivery["lease_expiries"],
            "last_error": error, "next_attempt_at": _iso(delivery["next_attempt_at"]),
            "created_at": _iso(delivery["created_at"]),
            "completed_at": _iso(delivery["completed_at"]),
            "override": delivery["override"]}
