"""Period close: cut-off, the revenue engine's period journals to the ERP, then the close.

Rules:
- The cut-off holds when everything that occurred before the period end is processed and
  delivered, or sits in the exception queue (where finance sees it). Otherwise the close is
  refused with the list of what is outstanding (`CutoffError`), and nothing changes.
- The revenue engine's period journals travel like any other event: typed
  `RevenueJournalRecorded` events from source `revrec` (the revenue domain's owner), stored
  raw, accepted, routed to the ERP through the outbox, traced by the correlation id
  `close:<entity>:<YYYY-MM>`, which is also the request id the revenue engine answers by.
  The engine answers one journal per currency, each id derived from (entity, period,
  currency), so a second close of the same period posts nothing twice. A period that a
  close sent a one-currency journal for under another id (before journals were per
  currency, the id came from (entity, period) alone) keeps that id for that currency's
  journal: the same journal again is a duplicate, a changed one a `duplicate_event`, never
  a second posting.
- The revenue engine fixes a period's journals when a close first asks for them and answers
  the same ever after (a reopened period's too); a change that lands after the close is
  caught up, as adjustment lines naming it and the closed period, in the next period the
  engine journals.
- The ERP period is closed only after every journal of the period is posted; a journal the
  ERP refuses leaves the period open and its exception in the queue.
- A period the ERP already holds closed (closed there, not by this close) is `already_closed`
  only when the revenue engine's journals for it are posted. Otherwise the close is refused
  (`revenue_not_posted`), naming the way out: reopen the period in the ERP (audited) and
  close again, or send the journals with `into_open_period`; the closed period refuses them
  as `closed_period`, and triage re-routes them to the first open period (approved by a
  second person above the threshold).
- Each close the ERP confirms ends with a signed checkpoint of the audit trail's head
  (`checkpoint`, given the reason `close:<entity>:<YYYY-MM>`), so that the records of the
  period, its close included, are signed when it closes.
- Late events for a closed period are refused by the ERP as `closed_period`; triage re-routes
  them to the first open period with approval.
- The close's checklist (`checklist`) is read without changing or raising anything: the
  cut-off's outstanding items by kind, what the exception queue holds, the revenue journals
  sent for the period and the ERP period's status. The close refuses exactly when its
  cut-off items are not all `done` (`blocks`), from the same read (`outstanding`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time

from finsync.audit.checkpoint import close_reason
from finsync.connectors.ports import LedgerPort, RevenuePort
from finsync.domain import codec
from finsync.domain.clock import Period, month_period
from finsync.domain.envelope import DraftEnvelope
from finsync.domain.errors import DomainError
from finsync.domain.events import RevenueJournalRecorded
from finsync.domain.ids import event_id_for
from finsync.domain.journal import JournalEntry, PeriodStatus, Side
from finsync.domain.money import per_currency
from finsync.domain.status import DeliveryStatus
from finsync.hub.close_checklist import (
    Checklist,
    JournalState,
    SentJournal,
    checklist_of,
    journal_state,
)
from finsync.hub.service import Hub
from finsync.storage import cutoff, event_log, exception_log, jsonutil, outbox
from finsync.storage.db import reading

SOURCE = "revrec"


class CutoffError(DomainError):
    code = "cutoff_incomplete"

    def __init__(self, message: str, outstanding: Sequence[dict[str, object]]) -> None:
        super().__init__(message)
        self.outstanding = list(outstanding)


class JournalNotPostedError(DomainError):
    code = "revenue_journal_not_posted"


class RevenueNotPostedError(DomainError):
    code = "revenue_not_posted"


@dataclass(frozen=True, slots=True)
class CloseResult:
    legal_entity: str
    period: str
    journals: tuple[JournalEntry, ...]
    status: str  # closed | already_closed | awaiting_reroute
    awaiting_reroute: tuple[str, ...] = ()  # "exception 7 (closed_period)", one per journal

    def as_json(self) -> dict[str, object]:
        """What `finsync close --json` prints and the console's close answers."""
        return {"legal_entity": self.legal_entity, "period": self.period,
                "status": self.status, "journals": [j.id for j in self.journals],
                "awaiting_reroute": list(self.awaiting_reroute)}


class PeriodClose:
    def __init__(self, hub: Hub, ledger: LedgerPort, revenue: RevenuePort,
                 checkpoint: Callable[[str], object] | None = None) -> None:
        self._hub, self._ledger, self._revenue = hub, ledger, revenue
        self._checkpoint = checkpoint

    def close(self, legal_entity: str, period_name: str, actor: str, *,
              into_open_period: bool = False) -> CloseResult:
        """`into_open_period` only matters when the ERP period is closed already: the
        journals not posted yet are sent, to be re-routed to the first open period."""
        period = month_period(period_name)
        correlation = close_correlation(legal_entity, period_name)
        self._hub.run_until_idle()
        if self._ledger.period_status(legal_entity, period.start) is PeriodStatus.CLOSED:
            return self._closed_already(legal_entity, period_name, correlation,
                                        into_open_period)
        self._check_cutoff(period)
        journals = self.journals(legal_entity, period_name, correlation)
        self._post(journals, correlation)
        self._ledger.close_period(legal_entity, period_name, actor)
        if self._checkpoint is not None:
            self._checkpoint(close_reason(legal_entity, period_name))
        return CloseResult(legal_entity, period_name, journals, "closed")

    def outstanding(self, period_name: str) -> list[dict[str, object]]:
        """What the cut-off of `period_name` still waits for (empty: the close may go on)."""
        end = datetime.combine(month_period(period_name).end, time(), UTC)
        with reading(self._hub.engine) as conn:
            return cutoff.unsettled(conn, end)

    def checklist(self, legal_entity: str, period_name: str,
                  unsent: Sequence[JournalEntry] = ()) -> Checklist:
        """The close's checklist for one entity and period, read without raising; `unsent`:
        the period's journals as the revenue engine would answer them now (shown as
        `not_sent` when no close has sent them yet)."""
        end = datetime.combine(month_period(period_name).end, time(), UTC)
        with reading(self._hub.engine) as conn:
            outstanding = cutoff.unsettled(conn, end)
            held = cutoff.held(conn, end)
        status = self._ledger.period_status(legal_entity, month_period(period_name).start)
        sent = self.sent_journals(legal_entity, period_name)
        known = {j.entry.id for j in sent}
        waiting = [SentJournal(e, None, JournalState.NOT_SENT)
                   for e in with_sent_ids(unsent, [j.entry for j in sent])
                   if e.id not in known]
        return checklist_of(outstanding, held, [*sent, *waiting], status)

    def sent_journals(self, legal_entity: str, period_name: str) -> list[SentJournal]:
        """The revenue journals sent to the ERP for the period (by earlier closes), each
        with where it stands: posted, on its way, or held by an exception."""
        correlation = close_correlation(legal_entity, period_name)
        with reading(self._hub.engine) as conn:
            event_ids = event_log.select_ids(conn, correlation_id=correlation)
            stored = event_log.get_many(conn, event_ids)
            named = exception_log.unresolved_objects(conn) if event_ids else {}
            sent: list[SentJournal] = []
            for event_id in event_ids:
                found = stored.get(event_id)
                if found is None or isinstance(found, event_log.UnreadableEvent):
                    continue
                if not isinstance(found.event, RevenueJournalRecorded):
                    continue
                states = outbox.event_statuses(conn, [event_id])
                held_by = named.get(f"event:{event_id}")
                sent.append(SentJournal(found.event.journal_entry, event_id,
                                        journal_state(states.values(), held_by), held_by))
        return sent

    def _closed_already(self, legal_entity: str, period_name: str, correlation: str,
                        into_open_period: bool) -> CloseResult:
        period = month_period(period_name)
        journals = self.journals(legal_entity, period_name, correlation)
        unposted = self._unposted(journals)
        if not unposted:
            return CloseResult(legal_entity, period_name, journals, "already_closed")
        if not into_open_period or any(unposted.values()):
            raise RevenueNotPostedError(self._way_out(legal_entity, period_name, unposted))
        self._check_cutoff(period)
        self._send(tuple(unposted), correlation)
        queued = self._unposted(tuple(unposted))
        if not all(queued.values()):
            raise JournalNotPostedError(f"the ERP has neither taken nor refused every revenue "
                                        f"journal of {correlation}; see `finsync exceptions "
                                        "list`")
        return CloseResult(legal_entity, period_name, tuple(unposted), "awaiting_reroute",
                           tuple(str(e) for e in queued.values()))

    def _unposted(self, journals: Sequence[JournalEntry]) -> dict[JournalEntry, str | None]:
        """Each journal the ERP has not taken -> what holds it: its unresolved exception, or
        its delivery (None: never sent)."""
        with reading(self._hub.engine) as conn:
            named = exception_log.unresolved_objects(conn)
            unposted: dict[JournalEntry, str | None] = {}
            for entry in journals:
                event_id = event_id_for(SOURCE, _source_event_id(entry))
                states = outbox.event_statuses(conn, [event_id])
                waiting = {d: s for d, s in states.items() if s is not DeliveryStatus.DONE}
                if not states:
                    unposted[entry] = None
                elif waiting:
                    unposted[entry] = named.get(f"event:{event_id}") or ", ".join(
                        f"delivery {d} ({s.value})" for d, s in sorted(waiting.items()))
        return unposted

    def journals(self, legal_entity: str, period_name: str,
                 correlation: str) -> tuple[JournalEntry, ...]:
        """The revenue engine's journals for the period, under the ids earlier closes sent
        them with (`with_sent_ids`)."""
        journals = self._revenue.period_journals(legal_entity, month_period(period_name),
                                                 correlation)
        sent = self.sent_journals(legal_entity, period_name)
        return with_sent_ids(journals, [j.entry for j in sent])

    def _way_out(self, legal_entity: str, period_name: str,
                 unposted: dict[JournalEntry, str | None]) -> str:
        revenue = self._revenue.account_map(legal_entity)["revenue"]
        amounts = ", ".join(f"{entry.id}: revenue {_credited(entry, revenue)}"
                            for entry in unposted)
        held = sorted({e for e in unposted.values() if e is not None})
        command = f"--entity {legal_entity} --period {period_name}"
        if held:
            send = (f"or re-route them to the first open period: they wait in {', '.join(held)}"
                    "; `finsync exceptions reroute ID --reason ...` (approved by a second "
                    "person above the threshold)")
        else:
            send = (f"or post them to the first open period: `finsync close {command} "
                    "--into-open-period`, then `finsync exceptions reroute ID --reason ...` "
                    "for each closed_period exception it opens (approved by a second person "
                    "above the threshold)")
        return (f"{legal_entity} {period_name} is closed in the ERP, but the revenue engine's "
                f"journals for it are not posted ({amounts}). Reopen the period (`finsync "
                f"ledger reopen {command} --reason ...`, approved by a second principal with "
                f"`finsync ledger reopen-approve ID`) and run `finsync close` "
                f"again, {send}")

    def _check_cutoff(self, period: Period) -> None:
        outstanding = self.outstanding(f"{period.start:%Y-%m}")
        if outstanding:
            raise CutoffError(f"{len(outstanding)} item(s) before {period.end} are neither "
                              "settled nor in the exception queue", outstanding)

    def _send(self, journals: Sequence[JournalEntry], correlation: str) -> None:
        now = self._hub.clock()
        bodies = [jsonutil.dumps(codec.draft_to_json(_draft(entry, correlation, now))).encode()
                  for entry in journals]
        self._hub.store(SOURCE, bodies, {"x-finsync-close": correlation})
        self._hub.run_until_idle()

    def _post(self, journals: Sequence[JournalEntry], correlation: str) -> None:
        self._send(journals, correlation)
        event_ids = [event_id_for(SOURCE, _source_event_id(entry)) for entry in journals]
        with reading(self._hub.engine) as conn:
            states = outbox.event_statuses(conn, event_ids)
        undelivered = [s for s in states.values() if s is not DeliveryStatus.DONE]
        if undelivered or len(states) < len(journals):
            raise JournalNotPostedError(
                f"the ERP has not taken every revenue journal of {correlation} "
                f"({states or 'none delivered'}); see `finsync exceptions list`")


def close_correlation(legal_entity: str, period_name: str) -> str:
    """The correlation id (and revenue engine request id) of one entity's period close."""
    return f"close:{legal_entity}:{period_name}"


def _credited(entry: JournalEntry, account: str) -> str:
    """What the entry credits to `account`, net of its debits there, per currency."""
    net = per_currency(line.amount if line.side is Side.CREDIT else -line.amount
                       for line in entry.lines if line.account == account)
    return ", ".join(str(m) for m in net) or "nothing"


def with_sent_ids(journals: Sequence[JournalEntry],
                  sent: Sequence[JournalEntry]) -> tuple[JournalEntry, ...]:
    """Each journal (one currency) under the id of a journal sent earlier for the same
    entity, day and only that currency, if any: the period's journal in that currency."""
    earlier: dict[tuple[str, date, str], str] = {}
    for entry in sent:
        currencies = {line.amount.currency for line in entry.lines}
        if len(currencies) == 1:
            earlier[(entry.legal_entity, entry.posting_date, currencies.pop())] = entry.id
    return tuple(replace(e, id=earlier.get((e.legal_entity, e.posting_date,
                                            e.lines[0].amount.currency), e.id))
                 for e in journals)


def _source_event_id(entry: JournalEntry) -> str:
    return f"journal_entry:{entry.id}:v1"


def _draft(entry: JournalEntry, correlation: str, now: datetime) -> DraftEnvelope:
    return DraftEnvelope(RevenueJournalRecorded(entry), SOURCE, _source_event_id(entry), now,
                         correlation)
