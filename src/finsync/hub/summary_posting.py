"""Summary posting: a round's ledger documents become summary journals (`hub.summary`).

Rules:
- Members are written (`storage.summary_log`) before their summary goes out, under a key
  derived from their keys; each member's receipt points at the summary's entry.
- A claimed delivery that already belongs to a summary is never summarised again:
  - the ERP knows the summary's key (it was posted): the delivery is done, pointing at it,
    and nothing is posted (a replay, or an outcome lost to a crash);
  - every member is claimed: the same members make the same summary, sent under the same
    key (the ERP answers a repeat with its first receipt);
  - a member is in flight elsewhere (a worker whose lease ran out may still be sending the
    summary): the claimed ones wait a lease;
  - otherwise no one can be sending it and it never reached the ERP: it is dissolved and
    its claimed members are summarised afresh.
- A document whose preview fails fails alone, with the preview's error; a document the ERP
  books in another currency, and any event not in `SUMMARISED`, is posted on its own.
- A summary posts as the typed event `JournalEntrySummarised`, through the ERP's journal
  entry call like any journal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine

from finsync.connectors.ports import (
    DeliveryContext,
    JournalPreviewPort,
    LedgerEvent,
    LedgerPort,
    Posting,
    Receipt,
)
from finsync.domain.envelope import Envelope
from finsync.domain.errors import ExceptionClass, PermanentError
from finsync.domain.events import (
    CreditMemoIssued,
    InvoiceIssued,
    JournalEntrySummarised,
    PaymentApplied,
    RefundIssued,
)
from finsync.domain.status import DeliveryStatus
from finsync.hub.delivery import Attempt, DeliveryWorker, Retry, context
from finsync.hub.summary import Member, SummaryGroup, group_of, summarisable, summarise, summary_key
from finsync.storage import outbox, summary_log
from finsync.storage.db import reading, transaction
from finsync.storage.outbox import Delivery

# The documents a summary adds up (journals post as they are).
SUMMARISED = (InvoiceIssued, CreditMemoIssued, PaymentApplied, RefundIssued)


@dataclass(frozen=True, slots=True)
class Item:
    delivery: Delivery
    env: Envelope
    event: LedgerEvent


@dataclass(frozen=True, slots=True)
class Planned:
    """A posting for the ERP and the deliveries its outcome settles."""

    posting: Posting
    members: tuple[Item, ...]
    summary: str | None = None

    def receipt_for(self, receipt: Receipt) -> Receipt:
        """A member's receipt names the summary, not a reference of its own (one entry
        cannot be the external id of many documents)."""
        if self.summary is None:
            return receipt
        return _member_receipt(self.summary, receipt)


def _member_receipt(summary: str, receipt: Receipt) -> Receipt:
    return Receipt(receipt.external_id, (), {"summary": summary,
                                             "replayed": receipt.detail.get("replayed", "false")})


def _detail(item: Item) -> Planned:
    return Planned(Posting(item.event, context(item.delivery, item.env)), (item,))


class SummaryPlanner:
    def __init__(self, engine: Engine, port: LedgerPort, worker: DeliveryWorker,
                 clock: Callable[[], datetime], lease_s: float) -> None:
        if not isinstance(port, JournalPreviewPort):
            raise PermanentError(f"{port.system} cannot preview journals: summary posting "
                                 "needs the ERP's own posting rules",
                                 exception_class=ExceptionClass.TARGET_UNAVAILABLE)
        self._engine, self._port, self._worker = engine, port, worker
        self._clock, self._lease_s = clock, lease_s

    def plan(self, items: Sequence[Item]) -> tuple[list[Planned], list[Attempt]]:
        """Postings for a round's items, and the attempts already settled without a call."""
        planned = [_detail(i) for i in items if not isinstance(i.event, SUMMARISED)]
        wanted = [i for i in items if isinstance(i.event, SUMMARISED)]
        with reading(self._engine) as conn:
            known = summary_log.summaries_of(conn, [i.delivery.id for i in wanted])
        resumed, settled, fresh = self._resume(
            [i for i in wanted if i.delivery.id in known], known)
        more, failed = self._summarise(fresh + [i for i in wanted if i.delivery.id not in known])
        return planned + resumed + more, settled + failed

    def _resume(self, items: Sequence[Item], known: dict[int, str]
                ) -> tuple[list[Planned], list[Attempt], list[Item]]:
        by_key: dict[str, list[Item]] = {}
        for item in items:
            by_key.setdefault(known[item.delivery.id], []).append(item)
        with reading(self._engine) as conn:
            recorded = summary_log.members(conn, list(by_key))
            elsewhere = outbox.statuses(conn, [d for rows in recorded.values() for d, _ in rows
                                               if d not in {i.delivery.id for i in items}])
        planned: list[Planned] = []
        settled: list[Attempt] = []
        fresh: list[Item] = []
        dissolved: list[str] = []
        for key, claimed in by_key.items():
            try:
                receipt = self._port.find_receipt(key)
            except Exception as exc:
                settled += [self._failed(i, exc) for i in claimed]
                continue
            siblings = [elsewhere[d] for d, _ in recorded[key] if d in elsewhere]
            if receipt is not None:
                settled += [Attempt(i.delivery, i.env, i.event, _member_receipt(key, receipt))
                            for i in claimed]
            elif not siblings and (again := self._rebuild(key, claimed)) is not None:
                planned.append(again)
            elif DeliveryStatus.IN_FLIGHT in siblings:
                later = self._clock() + timedelta(seconds=self._lease_s)
                settled += [Attempt(i.delivery, i.env, i.event, Retry(
                    f"summary {key} may still be in flight", later)) for i in claimed]
            else:
                dissolved.append(key)
                fresh += claimed
        if dissolved:
            with transaction(self._engine) as conn:
                summary_log.dissolve(conn, dissolved)
        return planned, settled, fresh

    def _rebuild(self, key: str, claimed: Sequence[Item]) -> Planned | None:
        """The summary of these members again, or None when it cannot be the same one."""
        try:
            members = [self._member(i) for i in claimed]
        except Exception:
            return None  # dissolved, and each member fails on its own when summarised afresh
        if not all(summarisable(m.preview) for m in members):
            return None
        if len({group_of(m.preview) for m in members}) != 1:
            return None
        return self._planned(key, members, claimed)

    def _summarise(self, items: Sequence[Item]) -> tuple[list[Planned], list[Attempt]]:
        planned: list[Planned] = []
        failed: list[Attempt] = []
        groups: dict[SummaryGroup, list[tuple[Member, Item]]] = {}
        for item in items:
            try:
                member = self._member(item)
            except Exception as exc:
                failed.append(self._failed(item, exc))
                continue
            if summarisable(member.preview):
                groups.setdefault(group_of(member.preview), []).append((member, item))
            else:
                planned.append(_detail(item))
        fresh: list[Planned] = []
        for pairs in groups.values():
            members = [m for m, _ in pairs]
            key = summary_key([m.delivery_key for m in members])
            fresh.append(self._planned(key, members, [i for _, i in pairs]))
        if fresh:
            with transaction(self._engine) as conn:
                for p in fresh:
                    summary_log.record(conn, str(p.summary), [
                        (i.delivery.id, i.event.document.id) for i in p.members])
        return planned + fresh, failed

    def _member(self, item: Item) -> Member:
        preview = self._port.preview_journal(item.event)
        return Member(item.delivery.id, item.delivery.delivery_key, item.event.document.id,
                      preview)

    def _planned(self, key: str, members: Sequence[Member], items: Sequence[Item]) -> Planned:
        entry = summarise(key, members)
        return Planned(Posting(JournalEntrySummarised(entry), _ctx(key)), tuple(items), key)

    def _failed(self, item: Item, exc: Exception) -> Attempt:
        return Attempt(item.delivery, item.env, item.event,
                       self._worker.outcome_of(item.delivery, exc))


def _ctx(key: str) -> DeliveryContext:
    return DeliveryContext(key, key, key)
