"""The seven metrics of DESIGN §7 in the Prometheus text format, computed from the store
each time they are asked for (no process state, so every worker reports the same)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from sqlalchemy import Engine

from finsync.domain.events import (
    ContractAmended,
    ContractCancelled,
    ContractCreated,
    ContractRenewed,
    InvoiceIssued,
)
from finsync.domain.status import DeliveryStatus
from finsync.storage import measures, recon_log
from finsync.storage.db import reading

QUANTILES = (0.5, 0.9, 0.99)
_CONTRACT_TYPES = frozenset(c.name for c in (ContractCreated, ContractAmended, ContractRenewed,
                                             ContractCancelled))
_GAVE_UP = (DeliveryStatus.FAILED, DeliveryStatus.DEAD)


def render(engine: Engine, ledgers: Sequence[str], revenues: Sequence[str],
           clock: Callable[[], datetime]) -> str:
    now = clock()
    with reading(engine) as conn:
        counts = measures.delivery_counts(conn)
        latencies = sorted(measures.posting_latencies(conn, ledgers))
        dup, raw = measures.duplicates_and_raw(conn)
        unresolved = measures.unresolved_exceptions(conn)
        runs = recon_log.latest(conn)
    lines: list[str] = []
    lines += _posting_success(counts, ledgers)
    lines += _latency(latencies)
    lines += _family("finsync_unmatched_ar_transactions", "gauge",
                     "AR items that billing and the ERP disagree on, latest reconciliation",
                     ((f'legal_entity="{r["legal_entity"]}"', _breaks(r)) for r in runs))
    failures = sum(n for target, kind, status, n in counts
                   if target in revenues and kind in _CONTRACT_TYPES and status in _GAVE_UP)
    lines += _family("finsync_revenue_schedule_failures", "gauge",
                     "Contract changes the revenue engine refused or never took",
                     [("", failures)])
    lines += _family("finsync_duplicate_events_total", "counter",
                     "Events recognised as duplicates and ignored", [("", dup)])
    lines += _family("finsync_duplicate_event_ratio", "gauge",
                     "Duplicates per raw event received", [("", dup / raw if raw else 0.0)])
    lines += _aging(unresolved, now)
    lines += _family("finsync_reconciliation_variance", "gauge",
                     "Sum of absolute variances of the latest reconciliation, per entity",
                     ((f'legal_entity="{r["legal_entity"]}",currency="{r["currency"]}"',
                       r["total_variance"]) for r in runs))
    return "\n".join(lines) + "\n"


def _breaks(run: dict[str, object]) -> int:
    checks = run["checks"]
    assert isinstance(checks, list)
    return sum(len(c["breaks"]) for c in checks
               if c["name"] in ("billing_vs_erp_ar", "payments_vs_ar_applications"))


def _posting_success(counts: list[tuple[str, str, str, int]],
                     ledgers: Sequence[str]) -> list[str]:
    invoices = InvoiceIssued.name
    done = sum(n for t, k, s, n in counts if t in ledgers and k == invoices
               and s == DeliveryStatus.DONE)
    refused = sum(n for t, k, s, n in counts if t in ledgers and k == invoices
                  and s in _GAVE_UP)
    ratio = done / (done + refused) if done + refused else 1.0
    lines = _family("finsync_invoice_posting_success_ratio", "gauge",
                    "Invoices posted to the ERP over invoices posted or refused", [("", ratio)])
    return lines + _family("finsync_deliveries", "gauge", "Deliveries by target, type, status",
                           ((f'target="{t}",type="{k}",status="{s}"', n)
                            for t, k, s, n in counts))


def _latency(values: list[float]) -> list[str]:
    name = "finsync_event_to_posting_latency_seconds"
    rows = [(f'quantile="{q}"', values[min(len(values) - 1, int(q * len(values)))])
            for q in QUANTILES] if values else []
    lines = _family(name, "summary", "From an event's occurrence to its posting in the ERP",
                    rows)
    return [*lines, f"{name}_sum {sum(values):.6f}", f"{name}_count {len(values)}"]


def _aging(unresolved: list[dict[str, object]], now: datetime) -> list[str]:
    by_class: dict[str, list[float]] = {}
    for row in unresolved:
        opened = row["opened_at"]
        assert isinstance(opened, datetime)
        by_class.setdefault(str(row["class"]), []).append(measures.age_s(opened, now))
    lines = _family("finsync_exceptions_unresolved", "gauge", "Unresolved exceptions by class",
                    ((f'class="{k}"', len(v)) for k, v in sorted(by_class.items())))
    return lines + _family("finsync_exception_age_seconds_max", "gauge",
                           "Age of the oldest unresolved exception, by class",
                           ((f'class="{k}"', max(v)) for k, v in sorted(by_class.items())))


def _family(name: str, kind: str, help_text: str,
            samples: Iterable[tuple[str, object]]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        lines.append(f"{name}{{{labels}}} {value}" if labels else f"{name} {value}")
    return lines
