"""The period close's checklist: what a controller looks at before closing a month.

Rules:
- The checklist is a value computed from reads (the cut-off's outstanding items, the
  exceptions holding earlier deliveries, the revenue journals sent for the period and the
  ERP period's status); building it changes nothing and raises nothing.
- Each item has one state: `done` (nothing left), `outstanding` (the close is refused until
  it is done), `in_queue` (held in the exception queue: it does not stop the close, and
  finance sees it there) or `to_do` (the close itself does it: send the revenue journals,
  close the ERP period).
- `blocks` is true exactly when the close would be refused as `cutoff_incomplete`: some
  cut-off item is outstanding. A list of items is capped at the read's limit (`more`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from finsync.domain.journal import JournalEntry, PeriodStatus, Side
from finsync.domain.money import Money, per_currency
from finsync.domain.status import DeliveryStatus

LISTED_MAX = 100  # items per kind the cut-off's reads return (`storage.cutoff`)


class CheckState(StrEnum):
    DONE = "done"
    OUTSTANDING = "outstanding"
    IN_QUEUE = "in_queue"
    TO_DO = "to_do"


class JournalState(StrEnum):
    """Where one revenue journal sent for a period stands in the ERP."""

    POSTED = "posted"
    PENDING = "pending"  # sent, not delivered yet
    HELD = "held"  # an unresolved exception holds it
    NOT_SENT = "not_sent"  # computed by the revenue engine, sent by the close


@dataclass(frozen=True, slots=True)
class SentJournal:
    entry: JournalEntry
    event_id: str | None
    state: JournalState
    held_by: str | None = None  # "exception 7 (closed_period)"

    def as_json(self) -> dict[str, Any]:
        entry = self.entry
        lines = [{"account": line.account, "side": line.side.value,
                  "amount": str(line.amount.amount), "currency": line.amount.currency}
                 for line in entry.lines]
        totals = [{"amount": str(m.amount), "currency": m.currency} for m in debits(entry)]
        return {"id": entry.id, "legal_entity": entry.legal_entity,
                "posting_date": entry.posting_date.isoformat(), "memo": entry.memo,
                "event_id": self.event_id, "state": self.state.value, "held_by": self.held_by,
                # `total`: the journal's debits when it is in one currency (every revenue
                # journal is), else null; `totals`: its debits per currency, always.
                "total": totals[0] if len(totals) == 1 else None, "totals": totals,
                "lines": lines}


def debits(entry: JournalEntry) -> tuple[Money, ...]:
    """The entry's debits per currency, in currency order (each equals its credits)."""
    return per_currency(line.amount for line in entry.lines if line.side is Side.DEBIT)


@dataclass(frozen=True, slots=True)
class CheckItem:
    key: str
    label: str
    state: CheckState
    items: tuple[dict[str, Any], ...] = ()
    more: bool = False  # the list stops at LISTED_MAX

    def as_json(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "state": self.state.value,
                "count": len(self.items), "more": self.more, "items": list(self.items)}


@dataclass(frozen=True, slots=True)
class Checklist:
    period_status: PeriodStatus
    items: tuple[CheckItem, ...]
    journals: tuple[SentJournal, ...]

    @property
    def blocks(self) -> bool:
        """The close would be refused (`cutoff_incomplete`)."""
        return any(i.state is CheckState.OUTSTANDING for i in self.items
                   if i.key in CUTOFF_KINDS.values())

    def as_json(self) -> dict[str, Any]:
        return {"period_status": self.period_status.value, "blocks": self.blocks,
                "items": [i.as_json() for i in self.items],
                "journals": [j.as_json() for j in self.journals]}


# The cut-off's kinds of outstanding item (`storage.cutoff.unsettled`) -> checklist key.
CUTOFF_KINDS = {"raw_event_unprocessed": "raw_events_processed",
                "event_parked": "events_sequenced",
                "delivery_outstanding": "deliveries_settled"}
_LABELS = {"raw_events_processed": "Every received event is processed",
           "events_sequenced": "No event before the period end waits for an earlier one",
           "deliveries_settled": "Every delivery before the period end is done or in the "
                                 "exception queue",
           "exceptions_held": "Exceptions holding deliveries before the period end",
           "revenue_journals": "The revenue engine's journals for the period are posted",
           "erp_period": "The ERP period is closed"}


def journal_state(statuses: Iterable[DeliveryStatus], held_by: str | None) -> JournalState:
    """A sent journal's state from its deliveries' statuses and its unresolved exception."""
    found = list(statuses)
    if found and all(s is DeliveryStatus.DONE for s in found):
        return JournalState.POSTED
    if held_by is not None:
        return JournalState.HELD
    return JournalState.PENDING


def checklist_of(outstanding: Sequence[dict[str, Any]], held: Sequence[dict[str, Any]],
                 journals: Sequence[SentJournal], period_status: PeriodStatus) -> Checklist:
    items = [_cutoff_item(key, [o for o in outstanding if o["kind"] == kind])
             for kind, key in CUTOFF_KINDS.items()]
    items.append(CheckItem("exceptions_held", _LABELS["exceptions_held"],
                           CheckState.IN_QUEUE if held else CheckState.DONE,
                           tuple(_with_money(h) for h in held), len(held) >= LISTED_MAX))
    items.append(CheckItem("revenue_journals", _LABELS["revenue_journals"],
                           _journals_state(journals, period_status),
                           tuple({"id": j.entry.id, "state": j.state.value,
                                  "held_by": j.held_by} for j in journals)))
    closed = period_status is PeriodStatus.CLOSED
    items.append(CheckItem("erp_period", _LABELS["erp_period"],
                           CheckState.DONE if closed else CheckState.TO_DO,
                           ({"status": period_status.value},)))
    return Checklist(period_status, tuple(items), tuple(journals))


def _cutoff_item(key: str, found: list[dict[str, Any]]) -> CheckItem:
    state = CheckState.OUTSTANDING if found else CheckState.DONE
    return CheckItem(key, _LABELS[key], state, tuple(found), len(found) >= LISTED_MAX)


def _journals_state(journals: Sequence[SentJournal], period_status: PeriodStatus) -> CheckState:
    """None to post in a closed period is done; in an open one the close asks for them."""
    states = {j.state for j in journals}
    if not journals:
        return CheckState.DONE if period_status is PeriodStatus.CLOSED else CheckState.TO_DO
    if JournalState.NOT_SENT in states:
        return CheckState.TO_DO
    if JournalState.HELD in states:
        return CheckState.IN_QUEUE
    if JournalState.PENDING in states:
        return CheckState.OUTSTANDING
    return CheckState.DONE


def _with_money(row: dict[str, Any]) -> dict[str, Any]:
    """A held exception's amount at stake as a decimal string with its currency."""
    shown = {k: v for k, v in row.items() if k not in ("amount_minor", "currency")}
    minor, currency = row.get("amount_minor"), row.get("currency")
    shown["amount_at_stake"] = (None if minor is None or currency is None else
                                {"amount": str(Money.from_minor(int(minor), currency).amount),
                                 "currency": currency})
    return shown
