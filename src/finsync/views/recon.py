"""The reconciliation page's read model: every check (`recon.checks.CHECKS`) per entity as
of a day, the drill-down of one check's breaks, the documents behind one item, the
variance trend, and a run started in the background.

Rules:
- A day somebody ran (`finsync reconcile`, the daily job, the console) is shown as that
  run recorded it (the latest run of each entity that day): what finance saw is what the
  page shows. A day nobody ran is computed on the spot and not recorded (a look, not a
  run: it opens no exception); `source` says which.
- `unexplained_breaks` counts what makes `finsync reconcile` exit 3 (`unexplained_breaks`):
  breaks nothing but their own reconciliation_break explains.
- A check's breaks are listed largest variance first, at most `BREAKS_MAX` of them;
  `breaks_total` says how many there are.
- Running reconciliation from the console is the CLI's call (`Reconciliation.run`),
  recorded in the audit trail as the principal who started it, in a background job whose
  progress is one step per entity and check, then one per entity recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from finsync.auth.principal import Principal
from finsync.domain.errors import DomainError
from finsync.domain.journal import JournalLine
from finsync.domain.limits import InputLimits
from finsync.recon import history
from finsync.recon.checks import CHECKS
from finsync.recon.documents import ItemDocuments
from finsync.systems.ledger.errors import LedgerError
from finsync.views.jobs import Job, Progress
from finsync.views.services import Services, require_entity

BREAKS_MAX = 500
TREND_DAYS = 90
RUN_JOB = "reconcile"
CHECK_NAMES = tuple(check.__name__ for check in CHECKS)


class UnknownReconciliationError(DomainError):
    """A check there is not, or a run that has no such check."""

    code = "not_found"


class AsOfOutOfRangeError(DomainError):
    code = "date_out_of_range"


@dataclass(frozen=True, slots=True)
class CheckSummary:
    name: str
    items: int
    breaks: int
    unexplained: int
    variance: str
    currency: str
    notes: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "items": self.items, "breaks": self.breaks,
                "unexplained": self.unexplained,
                "variance": {"amount": self.variance, "currency": self.currency},
                "notes": list(self.notes)}


@dataclass(frozen=True, slots=True)
class EntityRecon:
    legal_entity: str
    currency: str
    run_at: str | None  # when the shown run was recorded; None: computed now
    checks: tuple[CheckSummary, ...]

    @property
    def variance(self) -> str:
        total = sum((Decimal(c.variance) for c in self.checks if c.currency == self.currency),
                    Decimal(0))
        return str(total)

    def as_json(self) -> dict[str, Any]:
        return {"legal_entity": self.legal_entity, "currency": self.currency,
                "run_at": self.run_at,
                "variance": {"amount": self.variance, "currency": self.currency},
                "breaks": sum(c.breaks for c in self.checks),
                "unexplained_breaks": sum(c.unexplained for c in self.checks),
                "checks": [c.as_json() for c in self.checks]}


@dataclass(frozen=True, slots=True)
class ReconView:
    as_of: date
    source: str  # "stored": as a run recorded it; "computed": now, not recorded
    entities: tuple[EntityRecon, ...]

    @property
    def unexplained_breaks(self) -> int:
        return sum(c.unexplained for e in self.entities for c in e.checks)

    def as_json(self) -> dict[str, Any]:
        return {"as_of": self.as_of.isoformat(), "source": self.source,
                "unexplained_breaks": self.unexplained_breaks,
                "entities": [e.as_json() for e in self.entities]}


@dataclass(frozen=True, slots=True)
class BreakRow:
    item: dict[str, Any]  # `model.Item.as_dict`
    exception: tuple[int, str] | None  # its reconciliation_break: (id, status)

    def as_json(self) -> dict[str, Any]:
        i = self.item
        currency = i["currency"]
        return {"ref": i["ref"], "customer_id": i["customer_id"], "cause": i["cause"],
                "explained_by": i["explained_by"],
                "expected": {"amount": i["expected"], "currency": currency},
                "actual": {"amount": i["actual"], "currency": currency},
                "variance": {"amount": i["variance"], "currency": currency},
                "counted_elsewhere": None if i["counted_elsewhere"] is None
                else {"amount": i["counted_elsewhere"], "currency": currency},
                "exception": None if self.exception is None
                else {"id": self.exception[0], "status": self.exception[1]}}


@dataclass(frozen=True, slots=True)
class CheckDrill:
    as_of: date
    source: str
    legal_entity: str
    check: CheckSummary
    breaks: tuple[BreakRow, ...]

    def as_json(self) -> dict[str, Any]:
        return {"as_of": self.as_of.isoformat(), "source": self.source,
                "legal_entity": self.legal_entity, "check": self.check.as_json(),
                "breaks_total": self.check.breaks, "breaks_shown": len(self.breaks),
                "breaks": [b.as_json() for b in self.breaks]}


def checked_as_of(services: Services, as_of: date) -> date:
    """`as_of` within the input limits' years of today, else `date_out_of_range`."""
    today = services.clock().date()
    limits = InputLimits()
    earliest = today.replace(year=today.year - limits.years_back, day=1)
    latest = today.replace(year=today.year + limits.years_ahead, day=1)
    if not earliest <= as_of <= latest:
        raise AsOfOutOfRangeError(f"as_of {as_of.isoformat()} is not within "
                                  f"[{earliest.isoformat()}, {latest.isoformat()}]")
    return as_of


def default_as_of(services: Services) -> date:
    """The day of the latest recorded run, else today."""
    return services.finance.recon.last_as_of() or services.clock().date()


RunChecks = tuple[str | None, list[dict[str, Any]]]  # (run_at or None, `CheckResult.as_dict`s)


def _checks(services: Services, as_of: date) -> tuple[str, dict[str, RunChecks]]:
    """(source, entity -> its run's checks)."""
    recon = services.finance.recon
    stored = {r["legal_entity"]: r for r in recon.stored(as_of)}
    if stored and all(e.id in stored for e in services.entities):
        return "stored", {e: (r["run_at"].isoformat(), list(r["checks"]))
                          for e, r in stored.items()}
    report = recon.run(as_of, record=False)
    by_entity: dict[str, RunChecks] = {}
    for check in report.checks:
        by_entity.setdefault(check.legal_entity, (None, []))[1].append(check.as_dict())
    return "computed", by_entity


def _summary(check: dict[str, Any]) -> CheckSummary:
    """A check's counts; a run recorded before `unexplained` and `notes` were kept counts
    its unexplained breaks from the breaks themselves."""
    breaks = check["breaks"]
    unexplained = check.get("unexplained")
    if unexplained is None:
        unexplained = sum(1 for b in breaks if b.get("explained_by") is None)
    return CheckSummary(check["name"], int(check["items"]), len(breaks), int(unexplained),
                        str(check["variance"]), str(check["currency"]),
                        tuple(check.get("notes", ())))


def reconciliation(services: Services, as_of: date) -> ReconView:
    """Every check of every entity as of `as_of`."""
    source, by_entity = _checks(services, as_of)
    entities = []
    for entity in services.entities:
        run_at, checks = by_entity.get(entity.id, (None, []))
        entities.append(EntityRecon(entity.id, entity.currency, run_at,
                                    tuple(_summary(c) for c in checks)))
    return ReconView(as_of, source, tuple(entities))


def check_breaks(services: Services, as_of: date, entity: str, check: str) -> CheckDrill:
    """One check's breaks for one entity, largest variance first, with their exceptions."""
    require_entity(services.entities, entity)
    if check not in CHECK_NAMES:
        raise UnknownReconciliationError(f"no check {check[:64]!r}; the checks are "
                                         f"{', '.join(CHECK_NAMES)}")
    source, by_entity = _checks(services, as_of)
    found = next((c for c in by_entity.get(entity, (None, []))[1] if c["name"] == check), None)
    if found is None:
        raise UnknownReconciliationError(f"the run as of {as_of.isoformat()} has no check "
                                         f"{check} for {entity}")
    items = sorted(found["breaks"], key=lambda i: (-abs(Decimal(i["variance"])), i["ref"]))
    shown = items[:BREAKS_MAX]
    exceptions = services.finance.recon.break_exceptions(entity, check,
                                                         [i["ref"] for i in shown])
    rows = tuple(BreakRow(i, exceptions.get(i["ref"])) for i in shown)
    return CheckDrill(as_of, source, entity, _summary(found), rows)


@dataclass(frozen=True, slots=True)
class ErpEntry:
    """A journal entry of the embedded ERP, as posted (its memo, free text, is left out)."""

    system: str
    id: str
    posting_date: date
    lines: tuple[JournalLine, ...]

    def as_json(self) -> dict[str, Any]:
        return {"system": self.system, "id": self.id,
                "posting_date": self.posting_date.isoformat(),
                "lines": [{"account": line.account, "side": line.side.value,
                           "amount": {"amount": str(line.amount.amount),
                                      "currency": line.amount.currency}}
                          for line in self.lines]}


@dataclass(frozen=True, slots=True)
class ItemView:
    documents: ItemDocuments
    erp_entries: tuple[ErpEntry, ...]  # empty when the ERP is not the embedded one

    def as_json(self) -> dict[str, Any]:
        return {**self.documents.as_json(), "erp_entries": [e.as_json()
                                                            for e in self.erp_entries]}


def item_documents(services: Services, ref: str) -> ItemView:
    """The documents behind one item: the hub's events (with their correlation ids, for the
    timeline), the object's id in each system and, when the ERP is the embedded one, the
    journal entry it posted."""
    found = services.finance.recon.documents(ref)
    ledger = services.ledger
    embedded = {name for name, s in services.config.systems.items()
                if s.role == "ledger" and s.connector == "embedded"}
    entries = []
    for system, entry_id in found.in_systems:
        if ledger is None or system not in embedded:
            continue
        try:
            entry = ledger.entry(entry_id)
        except LedgerError:  # an id the ERP does not hold: its id is listed, no entry
            continue
        entries.append(ErpEntry(system, entry.id, entry.posting_date, entry.lines))
    return ItemView(found, tuple(entries))


@dataclass(frozen=True, slots=True)
class Trend:
    since: date
    until: date
    points: tuple[history.VariancePoint, ...]

    def as_json(self) -> dict[str, Any]:
        return {"since": self.since.isoformat(), "until": self.until.isoformat(),
                "points": [p.as_json() for p in self.points]}


def variance_trend(services: Services, until: date, days: int = TREND_DAYS) -> Trend:
    """Each entity's recorded variance per as-of day over the `days` up to `until`."""
    since = until - timedelta(days=days - 1)
    return Trend(since, until, history.variance_trend(services.finance.hub.engine, since,
                                                      until))


def start_run(services: Services, principal: Principal, as_of: date) -> Job:
    """Reconciliation as of `as_of` in the background, as `principal` (the running one if
    a run is under way already)."""
    recon = services.finance.recon

    def work(progress: Progress) -> dict[str, Any]:
        report = recon.run(as_of, progress=progress, actor=principal.id)
        return {"as_of": as_of.isoformat(), "unexplained_breaks": len(report.unexplained),
                "breaks": sum(len(c.breaks) for c in report.checks),
                "total_variance": [{"amount": str(m.amount), "currency": c}
                                   for c, m in sorted(report.total_variance().items())]}
    return services.jobs.start(RUN_JOB, principal.id, work)
