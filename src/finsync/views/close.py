"""The Close page's read model and actions: per entity and period the ERP status, the
close's checklist, the revenue journals, and the close and two-person reopen.

Rules:
- Every figure comes from the services the CLI uses: the period close (`hub.close`: the
  checklist is read without raising, the same read the close refuses on), the embedded
  ledger's periods and period log, the revenue engine's period journal, the two-person
  requests of `controls`.
- The actions are the CLI's: `finsync close` (`PeriodClose.close`, acting as the principal),
  `finsync ledger reopen` / `reopen-approve` / `reopen-reject` (`PeriodControl`). Each is
  audited by the service it calls, with the principal.
- A page reads and never writes: the reopen requests shown are those still waiting and not
  past their time (`TwoPerson.waiting`); their expiry is recorded by the CLI's listing and by
  any decision.
- Reopening needs the embedded ledger's period control: with an external ERP it is refused
  as `system_external` (reopen it in the ERP). An unknown entity is `unknown_entity`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from finsync.auth.principal import Principal
from finsync.bootstrap import build_two_person
from finsync.controls.period import PeriodControl
from finsync.controls.request import Request
from finsync.domain.clock import first_of_next_month, month_period
from finsync.domain.errors import DomainError, PermanentError
from finsync.domain.journal import JournalEntry, PeriodStatus
from finsync.hub.close import CloseResult
from finsync.hub.close_checklist import Checklist
from finsync.systems.ledger.service import LedgerService
from finsync.views.services import Services, SystemExternalError, require_entity

MONTHS_SHOWN = 12  # months listed per entity when the ERP is external (no period list)


class UnknownPeriodError(DomainError):
    code = "unknown_period"


@dataclass(frozen=True, slots=True)
class PeriodRow:
    legal_entity: str
    name: str
    start: date
    end: date
    status: PeriodStatus

    def as_json(self) -> dict[str, Any]:
        return {"legal_entity": self.legal_entity, "period": self.name,
                "start": self.start.isoformat(), "end": self.end.isoformat(),
                "status": self.status.value}


@dataclass(frozen=True, slots=True)
class CloseBoard:
    """Every entity's periods and status, and the reopen requests waiting for a second
    person."""

    entities: tuple[tuple[str, str], ...]  # (id, functional currency)
    periods: tuple[PeriodRow, ...]
    reopen_requests: tuple[Request, ...]
    ledger: str  # embedded | external

    def as_json(self) -> dict[str, Any]:
        return {"entities": [{"id": e, "functional_currency": c} for e, c in self.entities],
                "periods": [p.as_json() for p in self.periods],
                "reopen_requests": [r.as_json() for r in self.reopen_requests],
                "ledger": self.ledger}


@dataclass(frozen=True, slots=True)
class PeriodView:
    """One entity's period: its status, the close's checklist, its revenue journals, the
    reopen requests waiting for it and the period log (who closed or reopened it, why)."""

    period: PeriodRow
    checklist: Checklist
    reopen_requests: tuple[Request, ...]
    log: tuple[dict[str, Any], ...]

    def as_json(self) -> dict[str, Any]:
        checklist = self.checklist.as_json()
        return {**self.period.as_json(), "blocks": checklist["blocks"],
                "checklist": checklist["items"], "journals": checklist["journals"],
                "reopen_requests": [r.as_json() for r in self.reopen_requests],
                "log": list(self.log)}


def close_board(services: Services) -> CloseBoard:
    """Every entity's periods (the embedded ledger's, else the last `MONTHS_SHOWN` months
    as the ERP answers them) and the pending reopen requests."""
    entities = tuple((e.id, e.currency) for e in services.entities)
    if services.ledger is None:
        rows = tuple(row for e, _ in entities for row in _recent_months(services, e))
        return CloseBoard(entities, rows, (), "external")
    rows = tuple(PeriodRow(p.legal_entity, p.name, p.start, p.end, p.status)
                 for p in services.ledger.periods())
    return CloseBoard(entities, rows, tuple(_control(services).waiting()), "embedded")


def period_view(services: Services, legal_entity: str, period_name: str) -> PeriodView:
    _known(services, legal_entity, period_name)
    period = month_period(period_name)
    checklist = services.finance.close.checklist(legal_entity, period_name,
                                                 _unsent(services, legal_entity, period_name))
    row = PeriodRow(legal_entity, period_name, period.start, period.end,
                    checklist.period_status)
    if services.ledger is None:
        return PeriodView(row, checklist, (), ())
    subject = f"{legal_entity}:{period_name}"
    waiting = tuple(r for r in _control(services).waiting() if r.subject == subject)
    log = tuple(_log_row(r) for r in services.ledger.period_log(legal_entity)
                if r["period"] == period_name)
    return PeriodView(row, checklist, waiting, log)


def close_period(services: Services, principal: Principal, legal_entity: str,
                 period_name: str, *, into_open_period: bool = False) -> CloseResult:
    """`finsync close`: the cut-off, the revenue journals to the ERP, the ERP period closed,
    acting as `principal`."""
    _known(services, legal_entity, period_name)
    return services.finance.close.close(legal_entity, period_name, principal.id,
                                        into_open_period=into_open_period)


def request_reopen(services: Services, principal: Principal, legal_entity: str,
                   period_name: str, reason: str) -> Request:
    """`finsync ledger reopen`: a request another person approves."""
    _known(services, legal_entity, period_name)
    return _control(services).request_reopen(principal, legal_entity, period_name, reason)


def _control(services: Services) -> PeriodControl:
    ledger: LedgerService | None = services.ledger
    if ledger is None:
        raise SystemExternalError("the ERP is an external system: its periods are reopened "
                                  "there, under its own controls")
    return PeriodControl(build_two_person(services.config, services.finance.hub.engine,
                                          services.clock), ledger)


def _known(services: Services, legal_entity: str, period_name: str) -> None:
    """An entity of the configuration, and a period the embedded ledger holds (an external
    ERP answers for its own periods)."""
    require_entity(services.entities, legal_entity)
    month_period(period_name)
    if services.ledger is None:
        return
    if not any(p.name == period_name for p in services.ledger.periods(legal_entity)):
        raise UnknownPeriodError(f"{legal_entity} has no accounting period {period_name}: "
                                 "the ERP opens a year's periods when its first document "
                                 "arrives")


def _unsent(services: Services, legal_entity: str, period_name: str) -> list[JournalEntry]:
    """The period's revenue journals (one per currency) as the embedded revenue engine
    computes them now (none with an external engine: it answers at the close)."""
    if services.revenue is None:
        return []
    return list(services.revenue.period_journals(legal_entity, month_period(period_name)))


def _recent_months(services: Services, legal_entity: str) -> list[PeriodRow]:
    """The last `MONTHS_SHOWN` months up to the current one that the ERP holds a period
    for, oldest first, with the status it answers."""
    ledger = services.finance.ports.ledger()
    today = services.clock().date()
    start = date(today.year, today.month, 1)
    rows: list[PeriodRow] = []
    for _ in range(MONTHS_SHOWN):
        end = first_of_next_month(start)
        try:
            status = ledger.period_status(legal_entity, start)
        except PermanentError:  # a month the ERP holds no period for: not listed
            status = None
        if status is not None:
            rows.append(PeriodRow(legal_entity, f"{start:%Y-%m}", start, end, status))
        start = date(start.year - 1, 12, 1) if start.month == 1 else date(
            start.year, start.month - 1, 1)
    return rows[::-1]


def _log_row(row: dict[str, Any]) -> dict[str, Any]:
    at = row.get("at")
    return {"period": row["period"], "from_status": row["from_status"],
            "to_status": row["to_status"], "actor": row["actor"], "reason": row["reason"],
            "at": at.isoformat() if at is not None else None}
