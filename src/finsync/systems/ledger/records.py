"""Reading and writing the ledger's rows (SQLAlchemy Core), money as minor units."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import Connection, select

from finsync.domain.journal import (
    AccountingPeriod,
    JournalEntry,
    JournalLine,
    PeriodStatus,
    Side,
)
from finsync.domain.money import Money
from finsync.systems.ledger import tables as t
from finsync.systems.ledger.ar import ItemKind, OpenItem
from finsync.systems.ledger.chart import Account, AccountType, Chart, Role
from finsync.systems.ledger.errors import PeriodNotFoundError, UnknownEntityError
from finsync.systems.ledger.rules import JURISDICTION, AccountMap


def load_chart(conn: Connection, entity: str) -> Chart:
    rows = conn.execute(select(t.accounts).where(t.accounts.c.entity == entity)
                        .order_by(t.accounts.c.code)).mappings()
    return Chart(tuple(Account(r["code"], r["name"], AccountType(r["type"]),
                               Role(r["role"]) if r["role"] else None) for r in rows))


def load_entity(conn: Connection, entity: str) -> tuple[str, AccountMap]:
    row = conn.execute(select(t.entities).where(t.entities.c.id == entity)).mappings().first()
    if row is None:
        raise UnknownEntityError(f"legal entity {entity!r} is not set up in the ledger")
    data = json.loads(row["account_map"])
    return row["functional_currency"], AccountMap(
        data.get("revenue_by_product", {}), frozenset(data.get("recognised_on_invoice", [])),
        {k: Role(v) for k, v in data.get("credit_reason_roles", {"goodwill":
                                                                 "sales_allowances"}).items()})


def period_for(conn: Connection, entity: str, on: date) -> AccountingPeriod:
    row = conn.execute(select(t.periods).where(
        t.periods.c.entity == entity, t.periods.c.start <= on, t.periods.c.end > on)
    ).mappings().first()
    if row is None:
        raise PeriodNotFoundError(f"{entity} has no accounting period for {on}")
    return period_of(row)


def period_of(row: Any) -> AccountingPeriod:
    return AccountingPeriod(row["entity"], row["name"], row["start"], row["end"],
                            PeriodStatus(row["status"]))


def list_periods(conn: Connection, entity: str | None) -> list[AccountingPeriod]:
    query = select(t.periods).order_by(t.periods.c.entity, t.periods.c.start)
    if entity is not None:
        query = query.where(t.periods.c.entity == entity)
    return [period_of(r) for r in conn.execute(query).mappings()]


def entry_row(entry: JournalEntry, *, period: str, key: str, body_hash: str, kind: str,
              document_id: str | None, approved: bool, at: Any) -> dict[str, Any]:
    return {
        "id": entry.id, "entity": entry.legal_entity, "posting_date": entry.posting_date,
        "period": period, "memo": entry.memo, "idempotency_key": key, "body_hash": body_hash,
        "document_kind": kind, "document_id": document_id,
        "correlation_id": entry.correlation_id, "reverses": entry.reverses,
        "source_refs": json.dumps(list(entry.source_refs)), "approved": approved,
        "posted_at": at}


def line_rows(entry: JournalEntry) -> list[dict[str, Any]]:
    return [{
        "entry_id": entry.id, "line_no": n, "entity": entry.legal_entity,
        "posting_date": entry.posting_date, "account": line.account, "side": line.side.value,
        "amount_minor": line.amount.to_minor(), "currency": line.amount.currency,
        "txn_amount_minor": line.transaction_amount.to_minor()
        if line.transaction_amount else None,
        "txn_currency": line.transaction_amount.currency if line.transaction_amount else None,
        "customer": dict(line.dimensions).get("customer"),
        "dimensions": json.dumps(list(line.dimensions)),
        "jurisdiction": dict(line.dimensions).get(JURISDICTION),
    } for n, line in enumerate(entry.lines, start=1)]


def entries(conn: Connection, *, entity: str | None = None,
            entry_ids: Sequence[str] | None = None) -> list[JournalEntry]:
    """Posted entries with their lines, in posting order."""
    query = select(t.entries).order_by(t.entries.c.posting_date, t.entries.c.posted_at,
                                       t.entries.c.id)
    if entity is not None:
        query = query.where(t.entries.c.entity == entity)
    if entry_ids is not None:
        query = query.where(t.entries.c.id.in_(entry_ids))
    heads = list(conn.execute(query).mappings())
    by_entry: dict[str, list[JournalLine]] = {h["id"]: [] for h in heads}
    line_rows = conn.execute(select(t.lines).where(t.lines.c.entry_id.in_(list(by_entry)))
                             .order_by(t.lines.c.entry_id, t.lines.c.line_no)).mappings()
    for r in line_rows:
        foreign = None if r["txn_currency"] is None else \
            Money.from_minor(r["txn_amount_minor"], r["txn_currency"])
        by_entry[r["entry_id"]].append(JournalLine(
            r["account"], Side(r["side"]), Money.from_minor(r["amount_minor"], r["currency"]),
            tuple(tuple(d) for d in json.loads(r["dimensions"])), foreign))
    return [JournalEntry(h["id"], h["entity"], h["posting_date"], h["memo"],
                         tuple(by_entry[h["id"]]), h["correlation_id"], h["reverses"],
                         tuple(tuple(r) for r in json.loads(h["source_refs"])))
            for h in heads]


def entry_by_key(conn: Connection, key: str) -> Any | None:
    return conn.execute(select(t.entries).where(t.entries.c.idempotency_key == key)
                        ).mappings().first()


def items(conn: Connection, entity: str | None = None,
          only_open: bool = True) -> list[OpenItem]:
    query = select(t.items).order_by(t.items.c.entity, t.items.c.posting_date, t.items.c.id)
    if entity is not None:
        query = query.where(t.items.c.entity == entity)
    if only_open:
        query = query.where(t.items.c.open_minor != 0)
    return [item_of(r) for r in conn.execute(query).mappings()]


def item_of(r: Any) -> OpenItem:
    return OpenItem(r["id"], r["entity"], r["customer"], ItemKind(r["kind"]), r["document_id"],
                    Money.from_minor(r["original_minor"], r["currency"]),
                    Money.from_minor(r["open_minor"], r["currency"]),
                    Money.from_minor(r["booked_open_minor"], r["booked_currency"]),
                    r["posting_date"], r["due_date"])


def item_row(item: OpenItem, entry_id: str) -> dict[str, Any]:
    return {
        "entity": item.legal_entity, "id": item.id, "customer": item.customer_id,
        "kind": item.kind.value, "document_id": item.document_id, "currency": item.open.currency,
        "original_minor": item.original.to_minor(), "open_minor": item.open.to_minor(),
        "booked_currency": item.booked_open.currency,
        "booked_open_minor": item.booked_open.to_minor(), "posting_date": item.posting_date,
        "due_date": item.due_date, "entry_id": entry_id}


def applications(conn: Connection, entity: str, as_of: date) -> list[tuple[str, str, Money]]:
    """(settling document, settled document, amount in the item's currency) for every
    settlement posted up to `as_of` (a payment applied to an invoice, a credit used…)."""
    settling, item = t.entries.alias("settling"), t.items.alias("item")
    rows = conn.execute(
        select(settling.c.document_id, item.c.document_id, item.c.currency,
               t.settlements.c.applied_minor)
        .join(settling, settling.c.id == t.settlements.c.entry_id)
        .join(item, (item.c.entity == t.settlements.c.entity)
              & (item.c.id == t.settlements.c.item_id))
        .where(t.settlements.c.entity == entity, t.settlements.c.posting_date <= as_of)
        .order_by(t.settlements.c.id))
    return [(str(by), str(doc), Money.from_minor(minor, currency))
            for by, doc, currency, minor in rows]
