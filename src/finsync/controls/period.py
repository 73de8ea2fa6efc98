"""Period changes under control: reopening a period takes two people.

Rules:
- Closing and soft-closing need `periods:manage` and take effect at once.
- Reopening a closed (or soft-closed) period is a request (`period.reopen`, subject
  `<entity>:<YYYY-MM>`) of a principal with `periods:manage`; a different principal holding
  `periods:manage` and `exceptions:approve` approves it, and the period opens in the
  approval's transaction. The period log names who asked and why.
- Every period change is a record of the audit trail, written in the ledger's transaction
  by `record_change` (the embedded ledger calls it for each period-log row): actor the
  principal, action `period.close|soft_close|reopen`, object `period` `<entity>:<YYYY-MM>`,
  before and after the status, the reason (empty when none was given).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from finsync.audit import trail
from finsync.audit.chain import Entry
from finsync.auth.local import require
from finsync.auth.principal import EXCEPTIONS_APPROVE, PERIODS_MANAGE, Principal
from finsync.controls.request import ControlError, Request, TwoPerson
from finsync.domain.journal import AccountingPeriod, PeriodStatus
from finsync.systems.ledger.periods import month_bounds
from finsync.systems.ledger.service import LedgerService

REOPEN = "period.reopen"
APPROVER_NEEDS = (PERIODS_MANAGE, EXCEPTIONS_APPROVE)
_ACTIONS = {PeriodStatus.OPEN: "period.reopen", PeriodStatus.CLOSED: "period.close",
            PeriodStatus.SOFT_CLOSED: "period.soft_close"}


def record_change(conn: Connection, row: dict[str, Any]) -> None:
    """The audit record of one period-log row (same actor, statuses, reason and time)."""
    to = PeriodStatus(row["to_status"])
    trail.append(conn, Entry(row["actor"], _ACTIONS[to], "period",
                             f"{row['entity']}:{row['period']}", row["reason"] or "",
                             before={"status": row["from_status"]},
                             after={"status": to.value}), row["at"])


class PeriodControl:
    def __init__(self, requests: TwoPerson, ledger: LedgerService) -> None:
        self._requests, self._ledger = requests, ledger

    def close(self, principal: Principal, entity: str, period: str, *,
              soft: bool = False) -> AccountingPeriod:
        require(principal, PERIODS_MANAGE)
        month_bounds(period)
        to = PeriodStatus.SOFT_CLOSED if soft else PeriodStatus.CLOSED
        return self._ledger.set_period_status(entity, period, to, principal.id)

    def request_reopen(self, principal: Principal, entity: str, period: str,
                       reason: str) -> Request:
        require(principal, PERIODS_MANAGE)
        month_bounds(period)
        found = next((p for p in self._ledger.periods(entity) if p.name == period), None)
        if found is None:
            raise ControlError(f"{entity} has no period {period}")
        if found.status is PeriodStatus.OPEN:
            raise ControlError(f"{entity} {period} is open already")
        return self._requests.request(principal, REOPEN, f"{entity}:{period}",
                                      {"entity": entity, "period": period,
                                       "from_status": found.status.value},
                                      APPROVER_NEEDS, reason)

    def decide_reopen(self, principal: Principal, request_id: int, note: str, *,
                      approve: bool) -> Request:
        """Approve (the period opens now, in the approval's transaction) or reject."""
        def reopen(conn: Connection, request: Request) -> None:
            self._ledger.set_period_status(request.params["entity"], request.params["period"],
                                           PeriodStatus.OPEN, request.requested_by,
                                           request.reason, conn=conn)
        return self._requests.decide(request_id, principal, note, approve=approve,
                                     kind=REOPEN, carry_out=reopen)

    def pending(self) -> list[Request]:
        return self._requests.listing(kind=REOPEN)

    def waiting(self) -> list[Request]:
        """`pending`, read without recording the expiries (for a page)."""
        return self._requests.waiting(kind=REOPEN)
