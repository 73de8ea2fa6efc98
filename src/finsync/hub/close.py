"""Period close: cut-off, the revenue engine's period journals to the ERP, then the close.

Rules:
- The cut-off holds when everything that occurred before the period end is processed and
  delivered, or sits in the exception queue (where finance sees it). Otherwise the close is
  refused with the list of what is outstanding (`CutoffError`), and nothing changes.
- The revenue engine's period journals travel like any other event: typed
  `RevenueJournalRecorded` events from source `revrec` (the revenue domain's owner), stored
  raw, accepted, routed to the ERP through the outbox, traced by the correlation id
  `close:<entity>:<YYYY-MM>`, which is also the request id the revenue engine answers by.
  The journal's id is derived from (entity, period), so a second close of the same period
  posts nothing twice.
- The ERP period is closed only after every journal of the period is posted; a journal the
  ERP refuses leaves the period open and its exception in the queue.
- Late events for a closed period are refused by the ERP as `closed_period`; triage re-routes
  them to the first open period with approval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time

from finsync.connectors.ports import LedgerPort, RevenuePort
from finsync.domain import codec
from finsync.domain.clock import Period, month_period
from finsync.domain.envelope import DraftEnvelope
from finsync.domain.errors import DomainError
from finsync.domain.events import RevenueJournalRecorded
from finsync.domain.ids import event_id_for
from finsync.domain.journal import JournalEntry, PeriodStatus
from finsync.domain.status import DeliveryStatus
from finsync.hub.service import Hub
from finsync.storage import cutoff, jsonutil, outbox
from finsync.storage.db import reading

SOURCE = "revrec"


class CutoffError(DomainError):
    code = "cutoff_incomplete"

    def __init__(self, message: str, outstanding: Sequence[dict[str, object]]) -> None:
        super().__init__(message)
        self.outstanding = list(outstanding)


class JournalNotPostedError(DomainError):
    code = "revenue_journal_not_posted"


@dataclass(frozen=True, slots=True)
class CloseResult:
    legal_entity: str
    period: str
    journals: tuple[JournalEntry, ...]
    status: str  # closed | already_closed


class PeriodClose:
    def __init__(self, hub: Hub, ledger: LedgerPort, revenue: RevenuePort) -> None:
        self._hub, self._ledger, self._revenue = hub, ledger, revenue

    def close(self, legal_entity: str, period_name: str, actor: str) -> CloseResult:
        period = month_period(period_name)
        if self._ledger.period_status(legal_entity, period.start) is PeriodStatus.CLOSED:
            return CloseResult(legal_entity, period_name, (), "already_closed")
        self._hub.run_until_idle()
        self._check_cutoff(period)
        correlation = f"close:{legal_entity}:{period_name}"
        journals = tuple(self._revenue.period_journals(legal_entity, period, correlation))
        self._post(journals, correlation)
        self._ledger.close_period(legal_entity, period_name, actor)
        return CloseResult(legal_entity, period_name, journals, "closed")

    def _check_cutoff(self, period: Period) -> None:
        end = datetime.combine(period.end, time(), UTC)
        with reading(self._hub.engine) as conn:
            outstanding = cutoff.unsettled(conn, end)
        if outstanding:
            raise CutoffError(f"{len(outstanding)} item(s) before {period.end} are neither "
                              "settled nor in the exception queue", outstanding)

    def _post(self, journals: Sequence[JournalEntry], correlation: str) -> None:
        now = self._hub.clock()
        bodies = [jsonutil.dumps(codec.draft_to_json(_draft(entry, correlation, now))).encode()
                  for entry in journals]
        self._hub.store(SOURCE, bodies, {"x-finsync-close": correlation})
        self._hub.run_until_idle()
        event_ids = [event_id_for(SOURCE, _source_event_id(entry)) for entry in journals]
        with reading(self._hub.engine) as conn:
            states = outbox.event_statuses(conn, event_ids)
        undelivered = [s for s in states.values() if s is not DeliveryStatus.DONE]
        if undelivered or len(states) < len(journals):
            raise JournalNotPostedError(
                f"the ERP has not taken every revenue journal of {correlation} "
                f"({states or 'none delivered'}); see `finsync exceptions list`")


def _source_event_id(entry: JournalEntry) -> str:
    return f"journal_entry:{entry.id}:v1"


def _draft(entry: JournalEntry, correlation: str, now: datetime) -> DraftEnvelope:
    return DraftEnvelope(RevenueJournalRecorded(entry), SOURCE, _source_event_id(entry), now,
                         correlation)
