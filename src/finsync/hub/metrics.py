"""The seven metrics of DESIGN §7, computed from the store each time they are asked for (no
process state, so every worker reports the same): one computation (`measure`), shown in the
Prometheus text format (`Metrics.as_prometheus`) and as JSON (`Metrics.as_json`, the
console's).

Rules:
- Exception aging counts every unresolved exception (open, retrying, awaiting approval) by
  class and by age bucket (`AGE_BUCKETS`), with its money at stake per currency; an
  exception without an amount is counted and adds nothing.
- Reconciliation figures are those of each entity's latest recorded run.
- Money is a decimal string with its currency in JSON; ratios and seconds are numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from finsync.domain.events import (
    ContractAmended,
    ContractCancelled,
    ContractCreated,
    ContractRenewed,
    InvoiceIssued,
)
from finsync.domain.money import Money
from finsync.domain.status import DeliveryStatus
from finsync.storage import measures, recon_log
from finsync.storage.db import reading

QUANTILES = (0.5, 0.9, 0.99)
# An exception's age bucket: (name, upper bound in days; None: no bound), youngest first.
AGE_BUCKETS: tuple[tuple[str, int | None], ...] = (
    ("0-1d", 1), ("1-7d", 7), ("7-30d", 30), ("30-90d", 90), ("90d+", None))
_CONTRACT_TYPES = frozenset(c.name for c in (ContractCreated, ContractAmended, ContractRenewed,
                                             ContractCancelled))
_GAVE_UP = (DeliveryStatus.FAILED, DeliveryStatus.DEAD)
_UNMATCHED_AR_CHECKS = ("billing_vs_erp_ar", "payments_vs_ar_applications")


@dataclass(frozen=True, slots=True)
class Exposure:
    """The unresolved exceptions of one class opened within one age bucket: how many, and
    their money at stake per currency."""

    exception_class: str
    age: str
    count: int
    amounts: dict[str, Money] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ClassAging:
    exception_class: str
    unresolved: int
    oldest_age_s: float


@dataclass(frozen=True, slots=True)
class EntityRecon:
    """One entity's latest reconciliation run: its variance (sum of absolute item
    variances, in the entity's currency) and its unmatched AR items."""

    legal_entity: str
    as_of: date
    run_at: datetime
    variance: Money
    breaks: int
    unmatched_ar: int

    def as_json(self) -> dict[str, Any]:
        return {"legal_entity": self.legal_entity, "as_of": self.as_of.isoformat(),
                "run_at": self.run_at.isoformat(), "variance": _money(self.variance),
                "breaks": self.breaks, "unmatched_ar": self.unmatched_ar}


@dataclass(frozen=True, slots=True)
class Metrics:
    """What `measure` read at `measured_at`."""

    measured_at: datetime
    deliveries: tuple[tuple[str, str, str, int], ...]  # (target, event type, status, count)
    invoices_posted: int
    invoices_refused: int
    latencies: tuple[tuple[float, float], ...]  # (quantile, seconds); none without postings
    latency_sum_s: float
    latency_count: int
    schedule_failures: int
    duplicates: int
    raw_events: int
    aging: tuple[ClassAging, ...]
    exposure: tuple[Exposure, ...]
    reconciliation: tuple[EntityRecon, ...]

    @property
    def posting_success_ratio(self) -> float:
        settled = self.invoices_posted + self.invoices_refused
        return self.invoices_posted / settled if settled else 1.0

    @property
    def duplicate_ratio(self) -> float:
        return self.duplicates / self.raw_events if self.raw_events else 0.0

    def as_prometheus(self) -> str:
        """The Prometheus text format (`GET /metrics`, `finsync metrics`)."""
        return _prometheus(self)

    def as_json(self) -> dict[str, Any]:
        oldest = max((a.oldest_age_s for a in self.aging), default=None)
        return {
            "measured_at": self.measured_at.isoformat(),
            "invoice_posting_success": {"ratio": self.posting_success_ratio,
                                        "posted": self.invoices_posted,
                                        "refused": self.invoices_refused},
            "event_to_posting_latency_s": {
                **{f"p{round(q * 100)}": v for q, v in self.latencies},
                "count": self.latency_count, "sum": round(self.latency_sum_s, 6)},
            "unmatched_ar": {"total": sum(r.unmatched_ar for r in self.reconciliation),
                             "by_entity": [{"legal_entity": r.legal_entity,
                                            "count": r.unmatched_ar}
                                           for r in self.reconciliation]},
            "revenue_schedule_failures": self.schedule_failures,
            "duplicate_events": {"count": self.duplicates, "raw_events": self.raw_events,
                                 "ratio": self.duplicate_ratio},
            "exception_aging": {
                "unresolved": sum(a.unresolved for a in self.aging), "oldest_age_s": oldest,
                "by_class": [{"class": a.exception_class, "unresolved": a.unresolved,
                              "oldest_age_s": a.oldest_age_s} for a in self.aging]},
            "reconciliation_variance": [r.as_json() for r in self.reconciliation],
            "deliveries": [{"target": t, "type": k, "status": s, "count": n}
                           for t, k, s, n in self.deliveries],
        }


def measure(engine: Engine, ledgers: Sequence[str], revenues: Sequence[str],
            now: datetime) -> Metrics:
    """The metrics as the store holds them at `now`: `ledgers` are the ERP targets (invoice
    posting, latency), `revenues` the revenue engines (schedule failures)."""
    with reading(engine) as conn:
        counts = measures.delivery_counts(conn)
        latencies = sorted(measures.posting_latencies(conn, ledgers))
        dup, raw = measures.duplicates_and_raw(conn)
        unresolved = measures.unresolved_exceptions(conn)
        exposure = measures.at_stake_by_age(conn, _bucket_bounds(now))
        runs = recon_log.latest(conn)
    invoices = [(s, n) for t, k, s, n in counts if t in ledgers and k == InvoiceIssued.name]
    failures = sum(n for target, kind, status, n in counts
                   if target in revenues and kind in _CONTRACT_TYPES and status in _GAVE_UP)
    return Metrics(
        now, tuple(sorted(counts)),
        sum(n for s, n in invoices if s == DeliveryStatus.DONE),
        sum(n for s, n in invoices if s in _GAVE_UP),
        _quantiles(latencies), sum(latencies), len(latencies), failures, dup, raw,
        _aging(unresolved, now), _exposure(exposure), tuple(_recon(r) for r in runs))


def _bucket_bounds(now: datetime) -> list[datetime]:
    return [now - timedelta(days=days) for _, days in AGE_BUCKETS if days is not None]


def _quantiles(values: list[float]) -> tuple[tuple[float, float], ...]:
    if not values:
        return ()
    return tuple((q, values[min(len(values) - 1, int(q * len(values)))]) for q in QUANTILES)


def _aging(unresolved: list[dict[str, object]], now: datetime) -> tuple[ClassAging, ...]:
    by_class: dict[str, list[float]] = {}
    for row in unresolved:
        opened = row["opened_at"]
        assert isinstance(opened, datetime)
        by_class.setdefault(str(row["class"]), []).append(measures.age_s(opened, now))
    return tuple(ClassAging(k, len(v), max(v)) for k, v in sorted(by_class.items()))


def _exposure(rows: Iterable[tuple[str, int, str | None, int, int | None]]
              ) -> tuple[Exposure, ...]:
    counts: dict[tuple[str, int], int] = {}
    amounts: dict[tuple[str, int], dict[str, Money]] = {}
    for name, bucket, currency, n, minor in rows:
        key = (name, bucket)
        counts[key] = counts.get(key, 0) + n
        if currency is not None and minor is not None:
            amounts.setdefault(key, {})[currency] = Money.from_minor(minor, currency)
    return tuple(Exposure(name, AGE_BUCKETS[bucket][0], counts[name, bucket],
                          dict(sorted(amounts.get((name, bucket), {}).items())))
                 for name, bucket in sorted(counts))


def _recon(run: dict[str, Any]) -> EntityRecon:
    checks = run["checks"]
    assert isinstance(checks, list)
    unmatched = sum(len(c["breaks"]) for c in checks if c["name"] in _UNMATCHED_AR_CHECKS)
    variance = Money.of(run["total_variance"], run["currency"])
    return EntityRecon(run["legal_entity"], run["as_of"], run["run_at"], variance,
                       int(run["breaks"]), unmatched)


def _money(amount: Money) -> dict[str, str]:
    return {"amount": str(amount.amount), "currency": amount.currency}


def _prometheus(metrics: Metrics) -> str:
    m = metrics
    lines: list[str] = []
    lines += family("finsync_invoice_posting_success_ratio", "gauge",
                    "Invoices posted to the ERP over invoices posted or refused",
                    [("", m.posting_success_ratio)])
    lines += family("finsync_deliveries", "gauge", "Deliveries by target, type, status",
                    ((f'target="{t}",type="{k}",status="{s}"', n)
                     for t, k, s, n in m.deliveries))
    lines += _latency(m)
    lines += family("finsync_unmatched_ar_transactions", "gauge",
                    "AR items that billing and the ERP disagree on, latest reconciliation",
                    ((f'legal_entity="{r.legal_entity}"', r.unmatched_ar)
                     for r in m.reconciliation))
    lines += family("finsync_revenue_schedule_failures", "gauge",
                    "Contract changes the revenue engine refused or never took",
                    [("", m.schedule_failures)])
    lines += family("finsync_duplicate_events_total", "counter",
                    "Events recognised as duplicates and ignored", [("", m.duplicates)])
    lines += family("finsync_duplicate_event_ratio", "gauge",
                    "Duplicates per raw event received", [("", m.duplicate_ratio)])
    lines += family("finsync_exceptions_unresolved", "gauge", "Unresolved exceptions by class",
                    ((f'class="{a.exception_class}"', a.unresolved) for a in m.aging))
    lines += family("finsync_exception_age_seconds_max", "gauge",
                    "Age of the oldest unresolved exception, by class",
                    ((f'class="{a.exception_class}"', a.oldest_age_s) for a in m.aging))
    lines += family("finsync_reconciliation_variance", "gauge",
                    "Sum of absolute variances of the latest reconciliation, per entity",
                    ((f'legal_entity="{r.legal_entity}",currency="{r.variance.currency}"',
                      r.variance.amount) for r in m.reconciliation))
    return "\n".join(lines) + "\n"


def _latency(m: Metrics) -> list[str]:
    name = "finsync_event_to_posting_latency_seconds"
    lines = family(name, "summary", "From an event's occurrence to its posting in the ERP",
                   ((f'quantile="{q}"', v) for q, v in m.latencies))
    return [*lines, f"{name}_sum {m.latency_sum_s:.6f}", f"{name}_count {m.latency_count}"]


def family(name: str, kind: str, help_text: str,
           samples: Iterable[tuple[str, object]]) -> list[str]:
    """One metric family in the Prometheus text format: its help, its type, its samples
    (labels already written, `key="value"`; none: a bare sample)."""
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        lines.append(f"{name}{{{labels}}} {value}" if labels else f"{name} {value}")
    return lines
