"""The console's first screen: how much money is at risk, why, and since when.

Rules:
- Money at stake is every unresolved exception's (open, retrying, awaiting approval), per
  currency, by class and by age bucket (`hub.metrics.AGE_BUCKETS`); the by-class figures
  equal `finsync status`'s, and every bucket is listed, empty ones with nothing at stake.
- Each configured entity has its reconciliation line, the latest recorded run's (none yet:
  `latest` is null), and the variance of its runs as of the `days` days (`TREND_DAYS`) up to
  the latest recorded run's as-of day (today when none): yesterday's in a company whose
  daily job runs, and still a picture when the runs stopped or are dated ahead (a demo).
- Invoices held for tax (drafts billing could not tax yet) are shown apart, with their
  subtotals per currency: they are among the unresolved `tax_failure` exceptions, and no
  invoice of theirs is posted.
- CPQ orders not applied: held before billing, refused by it, or in mismatch with it
  (`hub.cpq_contracts`, the Quote-to-cash page's count).
- The metrics are the seven of DESIGN §7, the same computation as `finsync metrics`.
- The pipeline's health is this process's supervisor's (null when this process runs no
  pipeline: another one does), with what still waits to be delivered.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from finsync.bootstrap import measure_metrics
from finsync.domain.money import Money
from finsync.hub import cpq_contracts
from finsync.hub.metrics import AGE_BUCKETS, EntityRecon, Exposure, Metrics
from finsync.hub.pipeline import Health, Supervisor
from finsync.hub.status import BudgetWait, HeldForTax, Waiting
from finsync.recon.history import VariancePoint, variance_trend
from finsync.views.services import Services

TREND_DAYS = 90
TREND_DAYS_MAX = 366  # within what `recon_log.trend` reads at once


@dataclass(frozen=True, slots=True)
class Stake:
    """Unresolved exceptions under one heading (a class, an age bucket): how many, and
    their money at stake per currency."""

    key: str
    count: int
    amounts: tuple[tuple[str, str], ...]  # (currency, decimal amount), by currency

    def as_json(self, name: str) -> dict[str, Any]:
        return {name: self.key, "count": self.count,
                "at_stake": [{"amount": amount, "currency": currency}
                             for currency, amount in self.amounts]}


def _stakes(keys: Iterable[str], exposure: Iterable[Exposure], key_of: str) -> list[Stake]:
    """`exposure` summed per key (`key_of`: "class" or "age"), in the order of `keys`."""
    counts: dict[str, int] = {}
    sums: dict[str, dict[str, Money]] = {}
    for item in exposure:
        key = item.exception_class if key_of == "class" else item.age
        counts[key] = counts.get(key, 0) + item.count
        mine = sums.setdefault(key, {})
        for currency, amount in item.amounts.items():
            mine[currency] = mine[currency] + amount if currency in mine else amount
    return [Stake(key, counts.get(key, 0),
                  tuple((c, str(m.amount)) for c, m in sorted(sums.get(key, {}).items())))
            for key in keys]


@dataclass(frozen=True, slots=True)
class EntityLine:
    legal_entity: str
    currency: str
    latest: EntityRecon | None

    def as_json(self) -> dict[str, Any]:
        return {"legal_entity": self.legal_entity, "currency": self.currency,
                "latest": None if self.latest is None else self.latest.as_json()}


@dataclass(frozen=True, slots=True)
class Overview:
    metrics: Metrics
    entities: tuple[EntityLine, ...]
    trend_since: date
    trend_until: date
    trend: tuple[VariancePoint, ...]
    pipeline: Health | None
    waiting: Waiting
    held_for_tax: HeldForTax = field(default_factory=HeldForTax)
    cpq_not_applied: int = 0  # CPQ orders held, refused, failed or in mismatch
    budget_waits: tuple[BudgetWait, ...] = ()  # ERPs whose posting budget holds calls now

    @property
    def by_class(self) -> list[Stake]:
        names = sorted({e.exception_class for e in self.metrics.exposure})
        return _stakes(names, self.metrics.exposure, "class")

    @property
    def by_age(self) -> list[Stake]:
        return _stakes([name for name, _ in AGE_BUCKETS], self.metrics.exposure, "age")

    @property
    def total(self) -> Stake:
        return _stakes(["all"], (_as_all(e) for e in self.metrics.exposure), "class")[0]

    def as_json(self) -> dict[str, Any]:
        total = self.total
        return {
            "measured_at": self.metrics.measured_at.isoformat(),
            "at_stake": {"count": total.count, "amounts": total.as_json("all")["at_stake"]},
            "by_class": [s.as_json("class") for s in self.by_class],
            "by_age": [s.as_json("age") for s in self.by_age],
            "by_class_and_age": [{"class": e.exception_class, "age": e.age, "count": e.count,
                                  "at_stake": [{"amount": str(m.amount), "currency": c}
                                               for c, m in e.amounts.items()]}
                                 for e in self.metrics.exposure],
            "age_buckets": [name for name, _ in AGE_BUCKETS],
            "reconciliation": {"entities": [e.as_json() for e in self.entities],
                               "trend_since": self.trend_since.isoformat(),
                               "trend_until": self.trend_until.isoformat(),
                               "trend": [p.as_json() for p in self.trend]},
            "held_for_tax": self.held_for_tax.as_json(),
            "cpq_not_applied": self.cpq_not_applied,
            "metrics": self.metrics.as_json(),
            "pipeline": {"runs_here": self.pipeline is not None,
                         **({} if self.pipeline is None else self.pipeline.as_json()),
                         "waiting": self.waiting.as_json(),
                         "budget_waits": [w.as_json() for w in self.budget_waits]},
        }


def _as_all(exposure: Exposure) -> Exposure:
    return Exposure("all", exposure.age, exposure.count, exposure.amounts)


def metrics(services: Services) -> Metrics:
    """The seven metrics of DESIGN §7, as `finsync metrics` computes them."""
    return measure_metrics(services.finance)


def overview(services: Services, pipeline: Supervisor | None,
             days: int = TREND_DAYS) -> Overview:
    """The overview now: `pipeline` is this process's (None: it runs none), `days` how far
    back the variance trend goes (from the latest run's as-of day, else today)."""
    measured = metrics(services)
    latest = {r.legal_entity: r for r in measured.reconciliation}
    entities = tuple(EntityLine(e.id, e.currency, latest.get(e.id)) for e in services.entities)
    until = services.finance.recon.last_as_of() or measured.measured_at.date()
    since = until - timedelta(days=days)
    trend = variance_trend(services.finance.hub.engine, since, until)
    health = None if pipeline is None else pipeline.health()
    hub = services.finance.hub
    return Overview(measured, entities, since, until, trend, health, hub.waiting(),
                    hub.held_for_tax(), cpq_contracts.not_applied(hub.engine),
                    hub.budget_waits())
