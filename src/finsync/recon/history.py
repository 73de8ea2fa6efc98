"""Reconciliation runs as they were recorded: each entity's variance over time, for trends.

Rules:
- A point is one entity's latest run for one as-of date (a run repeated for the same date
  replaces the earlier one); dates without a run have no point (nothing is interpolated).
- The variance is the run's sum of absolute item variances in the entity's currency.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine

from finsync.domain.money import Money
from finsync.storage import recon_log
from finsync.storage.db import reading


@dataclass(frozen=True, slots=True)
class VariancePoint:
    legal_entity: str
    as_of: date
    run_at: datetime
    variance: Money
    breaks: int

    def as_json(self) -> dict[str, Any]:
        return {"legal_entity": self.legal_entity, "as_of": self.as_of.isoformat(),
                "run_at": self.run_at.isoformat(), "variance": str(self.variance.amount),
                "currency": self.variance.currency, "breaks": self.breaks}


def variance_trend(engine: Engine, since: date, until: date) -> tuple[VariancePoint, ...]:
    """Each entity's variance for every as-of date in [`since`, `until`] that has a recorded
    run, by entity then date."""
    with reading(engine) as conn:
        rows = recon_log.trend(conn, since, until)
    return tuple(VariancePoint(r["legal_entity"], r["as_of"], r["run_at"],
                               Money.of(r["total_variance"], r["currency"]), int(r["breaks"]))
                 for r in rows)
