"""Reconciliation runs kept for the record, for trends and for the variance metric.

Rules:
- Runs are never changed: a later run as of the same day stands beside the earlier one,
  and a reader takes the latest (highest id) of each (entity, as-of day).
- Reads are bounded: a trend covers at most `TREND_DAYS_MAX` days of as-of dates.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Select, func, insert, select

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


def latest_as_of(conn: Connection, as_of: date) -> list[dict[str, Any]]:
    """The latest run of each entity as of the day `as_of` (none: the day was not run)."""
    newest = _newest().where(recon_runs.c.as_of == as_of).subquery()
    rows = conn.execute(select(recon_runs).join(newest, newest.c.id == recon_runs.c.id)
                        .order_by(recon_runs.c.legal_entity)).mappings()
    return [_public(dict(r)) for r in rows]


TREND_DAYS_MAX = 400


def trend(conn: Connection, since: date, until: date) -> list[dict[str, Any]]:
    """Per entity and as-of day in [since, until], the latest run's variance and breaks,
    by entity then day (without the checks: a trend is read for its totals)."""
    if (until - since).days > TREND_DAYS_MAX:
        raise ValueError(f"a trend covers at most {TREND_DAYS_MAX} days")
    newest = _newest().where(recon_runs.c.as_of >= since,
                             recon_runs.c.as_of <= until).subquery()
    rows = conn.execute(
        select(recon_runs.c.legal_entity, recon_runs.c.as_of, recon_runs.c.run_at,
               recon_runs.c.currency, recon_runs.c.total_variance_minor, recon_runs.c.breaks)
        .join(newest, newest.c.id == recon_runs.c.id)
        .order_by(recon_runs.c.legal_entity, recon_runs.c.as_of)).mappings()
    return [{"legal_entity": r["legal_entity"], "as_of": r["as_of"], "run_at": r["run_at"],
             "currency": r["currency"], "breaks": r["breaks"],
             "total_variance": str(Money.from_minor(r["total_variance_minor"],
                                                    r["currency"]).amount)} for r in rows]


def _newest() -> Select[tuple[str, date, int]]:
    """The id of the latest run of each (entity, as-of day)."""
    return (select(recon_runs.c.legal_entity, recon_runs.c.as_of,
                   func.max(recon_runs.c.id).label("id"))
            .group_by(recon_runs.c.legal_entity, recon_runs.c.as_of))


def _public(row: dict[str, Any]) -> dict[str, Any]:
    row["checks"] = jsonutil.loads(row["checks"])
    row["total_variance"] = str(Money.from_minor(row.pop("total_variance_minor"),
                                                 row["currency"]).amount)
    return row
