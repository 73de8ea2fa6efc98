"""Reconciliation runs kept for the record, for trends and for the variance metric."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select

from finsync.domain.money import Money
from finsync.storage import jsonutil
from finsync.storage.schema import recon_runs


def record(conn: Connection, entity: str, as_of: date, variance: Money, breaks: int,
           checks: Sequence[dict[str, Any]], at: datetime) -> int:
    return int(conn.execute(insert(recon_runs).returning(recon_runs.c.id).values(
        legal_entity=entity, as_of=as_of, run_at=at, currency=variance.currency,
        total_variance_minor=variance.quantize().to_minor(), breaks=breaks,
        checks=jsonutil.dumps(list(checks)))).scalar_one())


def latest(conn: Connection) -> list[dict[str, Any]]:
    """The latest run of each entity."""
    newest = select(recon_runs.c.legal_entity, func.max(recon_runs.c.id).label("id")) \
        .group_by(recon_runs.c.legal_entity).subquery()
    rows = conn.execute(select(recon_runs).join(newest, newest.c.id == recon_runs.c.id)
                        .order_by(recon_runs.c.legal_entity)).mappings()
    return [_public(dict(r)) for r in rows]


def _public(row: dict[str, Any]) -> dict[str, Any]:
    row["checks"] = jsonutil.loads(row["checks"])
    row["total_variance"] = str(Money.from_minor(row.pop("total_variance_minor"),
                                                 row["currency"]).amount)
    return row


def trend(conn: Connection, since: date) -> list[dict[str, Any]]:
    """The latest run of each entity for each as-of date from `since` on, oldest date
    first: `legal_entity`, `as_of`, `run_at`, `currency`, `total_variance_minor`, `breaks`
    (the checks themselves are not read)."""
    newest = (select(func.max(recon_runs.c.id).label("id"))
              .where(recon_runs.c.as_of >= since)
              .group_by(recon_runs.c.legal_entity, recon_runs.c.as_of).subquery())
    rows = conn.execute(
        select(recon_runs.c.legal_entity, recon_runs.c.as_of, recon_runs.c.run_at,
               recon_runs.c.currency, recon_runs.c.total_variance_minor, recon_runs.c.breaks)
        .join(newest, newest.c.id == recon_runs.c.id)
        .order_by(recon_runs.c.as_of, recon_runs.c.legal_entity)).mappings()
    return [dict(r) for r in rows]
