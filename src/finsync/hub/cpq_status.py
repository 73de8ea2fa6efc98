"""Quote-to-cash status: what became of each CPQ version of a commercial contract.

Rules:
- Per contract: each CPQ version the hub holds (in version order, any status: a parked
  one waits for an earlier version, a rejected one is a changed copy kept for finance),
  its order's state (`held`, `sent`, `applied`, `mismatch`; none yet: not ordered), its
  deliveries, the milestones of its correlation id (contract accepted, order accepted,
  invoice posted, payment applied, revenue schedule created...) and the exceptions opened
  for it with their money at stake; then the contract's renewal baseline and the
  catalogue map version in force.
- It reads only (one snapshot); `as_json` is its one rendering for the CLI and the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from finsync.domain import codec
from finsync.domain.order_check import RenewalBaseline
from finsync.domain.status import OrderState
from finsync.storage import cpq_log, exception_log, milestone_log
from finsync.storage.db import reading


@dataclass(frozen=True, slots=True)
class MilestoneSeen:
    name: str
    target: str
    event_id: str
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class ExceptionSeen:
    id: int
    exception_class: str
    status: str
    summary: str
    at_stake: dict[str, str] | None


@dataclass(frozen=True, slots=True)
class VersionStatus:
    cpq_version: int | None
    quote_id: str  # the correlation id
    event_id: str
    event_status: str
    order_state: OrderState | None
    catalog_version: int | None
    detail: str | None
    deliveries: tuple[tuple[str, str], ...]  # (target, delivery status)
    milestones: tuple[MilestoneSeen, ...]
    exceptions: tuple[ExceptionSeen, ...]


@dataclass(frozen=True, slots=True)
class ContractStatus:
    contract_id: str
    versions: tuple[VersionStatus, ...]
    baseline: RenewalBaseline | None
    catalog_version: int | None


def contract_status(engine: Engine, contract_id: str) -> ContractStatus | None:
    """The quote-to-cash status of a CPQ contract; None when the hub holds no version."""
    with reading(engine, snapshot=True) as conn:
        versions = cpq_log.versions_of(conn, contract_id)
        if not versions:
            return None
        orders = {r.quote_id: r for r in cpq_log.orders_of(conn, contract_id)}
        sent = cpq_log.deliveries_of(conn, [str(v["event_id"]) for v in versions])
        seen = []
        for version in versions:
            quote = str(version["correlation_id"])
            order = orders.get(quote)
            seen.append(VersionStatus(
                cpq_version=version["aggregate_version"], quote_id=quote,
                event_id=str(version["event_id"]), event_status=str(version["status"]),
                order_state=None if order is None else order.state,
                catalog_version=None if order is None else order.catalog_version,
                detail=None if order is None else order.detail,
                deliveries=tuple(sent.get(str(version["event_id"]), ())),
                milestones=tuple(MilestoneSeen(str(m["name"]), str(m["target"]),
                                               str(m["event_id"]), m["recorded_at"])
                                 for m in milestone_log.timeline(conn, quote)),
                exceptions=tuple(ExceptionSeen(int(e["id"]), str(e["class"]),
                                               str(e["status"]), str(e["summary"]),
                                               e["at_stake"])
                                 for e in exception_log.for_correlation(conn, quote))))
        current = cpq_log.current_catalog(conn)
        return ContractStatus(contract_id, tuple(seen), cpq_log.baseline(conn, contract_id),
                              None if current is None else current[0])


def as_json(status: ContractStatus) -> dict[str, Any]:
    """The status as JSON (decimal strings, ISO dates)."""
    return {
        "contract_id": status.contract_id,
        "catalog_version": status.catalog_version,
        "renewal_baseline": (None if status.baseline is None
                             else codec.encode(status.baseline)),
        "versions": [{
            "cpq_version": v.cpq_version, "quote_id": v.quote_id, "event_id": v.event_id,
            "event_status": v.event_status,
            "order_state": None if v.order_state is None else v.order_state.value,
            "catalog_version": v.catalog_version, "detail": v.detail,
            "deliveries": [{"target": t, "status": s} for t, s in v.deliveries],
            "milestones": [{"name": m.name, "target": m.target, "event_id": m.event_id,
                            "recorded_at": m.recorded_at.isoformat()} for m in v.milestones],
            "exceptions": [{"id": e.id, "class": e.exception_class, "status": e.status,
                            "summary": e.summary, "at_stake": e.at_stake}
                           for e in v.exceptions],
        } for v in status.versions],
    }
