"""The documents behind one reconciliation item, as the hub knows them: the events it
accepted for the object (each with its correlation id, the way into the timeline) and the
object's id in each system it was delivered to (the ERP's journal entry, the revenue
engine's contract).

Rules:
- An item's ref is `<kind>:<id>` (`model.Item.ref`). Kinds that name one document
  (`DOCUMENT_KINDS`) are looked up; the others (a customer's balance, a period, the
  roll-forward, a GL balance) sum many documents and have none of their own. A tax item
  (`tax:<jurisdiction>:<month>:<document>`) is its document's: the invoice or credit memo
  of that id the hub holds events for.
- What is read is bounded: at most `EVENTS_MAX` events of one object, newest last.
- Only what the hub stores is read (its events and cross-references), so the answer is the
  same whether the ERP is embedded, Tryton or a file drop; a system's own view of its
  document is that system's report.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from finsync.domain.envelope import Envelope
from finsync.recon.tax import DOCUMENT_KINDS as TAX_DOCUMENT_KINDS
from finsync.recon.tax import tax_document
from finsync.storage import cross_ref, event_log

# Item kinds that name one document, and the hub's aggregate type for it.
DOCUMENT_KINDS = {"invoice": "invoice", "payment": "payment", "credit_memo": "credit_memo",
                  "refund": "refund", "subscription_contract": "subscription_contract"}
EVENTS_MAX = 50


@dataclass(frozen=True, slots=True)
class HubEvent:
    event_id: str
    type: str
    occurred_at: datetime | None
    correlation_id: str
    contract_id: str | None  # the subscription contract the document belongs to

    def as_json(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "type": self.type,
                "occurred_at": None if self.occurred_at is None
                else self.occurred_at.isoformat(),
                "correlation_id": self.correlation_id, "contract_id": self.contract_id}


@dataclass(frozen=True, slots=True)
class ItemDocuments:
    ref: str
    kind: str
    object_id: str
    events: tuple[HubEvent, ...] = ()
    in_systems: tuple[tuple[str, str], ...] = ()  # (system, its id for the object)

    @property
    def correlation_ids(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(e.correlation_id for e in self.events))

    @property
    def contract_ids(self) -> tuple[str, ...]:
        found = (e.contract_id for e in self.events if e.contract_id)
        return tuple(dict.fromkeys(found))

    def as_json(self) -> dict[str, Any]:
        return {"ref": self.ref, "kind": self.kind, "object_id": self.object_id,
                "has_documents": self.kind in DOCUMENT_KINDS,
                "events": [e.as_json() for e in self.events],
                "correlation_ids": list(self.correlation_ids),
                "contract_ids": list(self.contract_ids),
                "in_systems": [{"system": s, "id": i} for s, i in self.in_systems]}


def split_ref(ref: str) -> tuple[str, str]:
    kind, _, object_id = ref.partition(":")
    return kind, object_id


def documents_of(conn: Connection, ref: str) -> ItemDocuments:
    """The hub's events and cross-references for the object an item's `ref` names."""
    kind, object_id = split_ref(ref)
    if kind == "tax":
        return _tax_documents(conn, ref)
    aggregate = DOCUMENT_KINDS.get(kind)
    if aggregate is None or not object_id:
        return ItemDocuments(ref, kind, object_id)
    return _documents(conn, ref, kind, aggregate, object_id)


def _tax_documents(conn: Connection, ref: str) -> ItemDocuments:
    document_id = tax_document(ref)
    for kind in TAX_DOCUMENT_KINDS:
        found = _documents(conn, ref, kind, DOCUMENT_KINDS[kind], document_id)
        if found.events:
            return found
    return ItemDocuments(ref, "tax", document_id)


def _documents(conn: Connection, ref: str, kind: str, aggregate: str,
               object_id: str) -> ItemDocuments:
    ids = event_log.select_ids(conn, aggregate=(aggregate, object_id))[-EVENTS_MAX:]
    stored = event_log.get_many(conn, ids)
    events = tuple(_event(stored[i]) for i in ids if i in stored)
    refs = tuple(sorted(cross_ref.refs_of(conn, object_id).items()))
    return ItemDocuments(ref, kind, object_id, events, refs)


def _event(stored: Envelope | event_log.UnreadableEvent) -> HubEvent:
    if isinstance(stored, event_log.UnreadableEvent):
        return HubEvent(stored.event_id, stored.type, None, stored.correlation_id, None)
    contract = getattr(stored.event.document, "contract_id", None)
    return HubEvent(stored.event_id, str(stored.type), stored.occurred_at,
                    stored.correlation_id, None if contract is None else str(contract))
