"""The Contract timeline page's read model: one correlation id across the systems.

Rules:
- The milestones (contract accepted, invoice posted, payment applied, revenue schedule
  created, exception resolved, …) are the hub's milestone log, oldest first; the technical
  status (are its deliveries done?) and the financial one (did its effects reach the books?)
  are `Hub.transaction_status`, the figures of `finsync timeline --json`; the technical
  status is also given per system its deliveries went to.
- The exceptions raised for it are listed resolved or not, their texts as the reader may see
  them (personal data only with `pii:read`).
- The external calls made for it (the call log) are shown only to a reader holding
  `audit:read`, the scope of `GET /v1/correlations/{id}/calls`; to others the answer says
  they are withheld and why, never an empty list that would read as "no calls".
- A search takes a correlation id, or the id of an object (an invoice, a contract, a
  payment, …) and answers the correlation ids it names, oldest first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from finsync.auth.principal import AUDIT_READ
from finsync.views.services import Services


@dataclass(frozen=True, slots=True)
class Timeline:
    correlation_id: str
    milestones: tuple[dict[str, Any], ...]
    status: dict[str, Any]  # technical, deliveries, financial, unresolved_exceptions
    systems: tuple[dict[str, Any], ...]  # per target system: technical, deliveries
    exceptions: tuple[dict[str, Any], ...]
    calls: tuple[dict[str, Any], ...] | None  # None: withheld (no audit:read)

    def as_json(self) -> dict[str, Any]:
        withheld = None if self.calls is not None else (
            f"the external calls need {AUDIT_READ}")
        return {"correlation_id": self.correlation_id, **self.status,
                "systems": list(self.systems), "milestones": list(self.milestones),
                "exceptions": list(self.exceptions),
                "calls": None if self.calls is None else list(self.calls),
                "calls_withheld": withheld}


@dataclass(frozen=True, slots=True)
class CorrelationSearch:
    query: str
    found: tuple[dict[str, Any], ...]

    def as_json(self) -> dict[str, Any]:
        return {"query": self.query, "correlations": [
            {**f, "first_at": _iso(f["first_at"]), "last_at": _iso(f["last_at"])}
            for f in self.found]}


def timeline(services: Services, correlation_id: str, *, can_read_pii: bool,
             can_read_audit: bool) -> Timeline:
    hub = services.finance.hub
    milestones = tuple(_milestone(m) for m in hub.timeline(correlation_id))
    exceptions = tuple(_exception(e) for e in hub.correlation_exceptions(
        correlation_id, can_read_pii=can_read_pii))
    calls = (tuple(c.as_json() for c in hub.calls(correlation_id)) if can_read_audit
             else None)
    return Timeline(correlation_id, milestones, hub.transaction_status(correlation_id),
                    tuple(hub.systems_status(correlation_id)), exceptions, calls)


def search(services: Services, text: str) -> CorrelationSearch:
    wanted = text.strip()
    return CorrelationSearch(wanted, tuple(services.finance.hub.correlations_of(wanted)))


def _milestone(row: dict[str, Any]) -> dict[str, Any]:
    return {"milestone": row["name"], "system": row["target"], "event_id": row["event_id"],
            "at": _iso(row["recorded_at"])}


def _exception(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "class": row["class"], "status": row["status"],
            "summary": row.get("summary"), "amount_at_stake": row.get("at_stake"),
            "objects": row.get("objects"), "opened_at": _iso(row.get("opened_at")),
            "resolved_at": _iso(row.get("resolved_at")),
            "resolution_note": row.get("resolution_note")}


def _iso(value: object) -> str | None:
    if isinstance(value, datetime):
        return value.isoformat()
    return None if value is None else str(value)
