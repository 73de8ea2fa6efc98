"""Reading and writing the ledger's rows (SQLAlchemy Core), money as minor units."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, and_, bindparam, insert, select, update

from finsync.domain.journal import (
    AccountingPeriod,
    JournalEntry,
    JournalLine,
    PeriodStatus,
    Side,
)
from finsync.domain.money import Money
from finsync.systems.ledger import tables as t
from finsync.systems.ledger.ar import ItemKind, OpenItem, Settlement
from finsync.systems.ledger.chart import Account, AccountType, Chart, Role
from finsync.systems.ledger.errors import PeriodNotFoundError, UnknownEntityError
from finsync.systems.ledger.fx import Rate, RateTable
from finsync.systems.ledger.rules import AccountMap


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
    return _period(row)


def _period(row: Any) -> AccountingPeriod:
    return AccountingPeriod(row["entity"], row["name"], row["start"], row["end"],
                            PeriodStatus(row["status"]))


def list_periods(conn: Connection, entity: str | None) -> list[AccountingPeriod]:
    query = select(t.periods).order_by(t.periods.c.entity, t.periods.c.start)
    if entity is not None:
        query = query.where(t.periods.c.entity == entity)
    return [_period(r) for r in conn.execute(query).mappings()]


_RATE = select(t.fx_rates).where(
    t.fx_rates.c.base == bindparam("b_base"), t.fx_rates.c.quote == bindparam("b_quote"),
    t.fx_rates.c.effective <= bindparam("b_on")).order_by(t.fx_rates.c.effective.desc()).limit(1)


def rates_for(conn: Connection, base: str, quote: str, on: date) -> RateTable:
    """Only the rate a conversion on `on` needs (the whole table would grow with history)."""
    row = conn.execute(_RATE, {"b_base": base, "b_quote": quote, "b_on": on}).first()
    return RateTable([] if row is None else
                     [Rate(row.base, row.quote, row.effective, Decimal(row.rate))])


def insert_entry(conn: Connection, entry: JournalEntry, *, period: str, key: str,
                 body_hash: str, kind: str, document_id: str | None, approved: bool,
                 at: Any) -> None:
    conn.execute(insert(t.entries), {
        "id": entry.id, "entity": entry.legal_entity, "posting_date": entry.posting_date,
        "period": period, "memo": entry.memo, "idempotency_key": key, "body_hash": body_hash,
        "document_kind": kind, "document_id": document_id,
        "correlation_id": entry.correlation_id, "reverses": entry.reverses,
        "source_refs": json.dumps(list(entry.source_refs)), "approved": approved,
        "posted_at": at})
    conn.execute(insert(t.lines), [{
        "entry_id": entry.id, "line_no": n, "entity": entry.legal_entity,
        "posting_date": entry.posting_date, "account": line.account, "side": line.side.value,
        "amount_minor": line.amount.to_minor(), "currency": line.amount.currency,
        "txn_amount_minor": line.transaction_amount.to_minor()
        if line.transaction_amount else None,
        "txn_currency": line.transaction_amount.currency if line.transaction_amount else None,
        "customer": dict(line.dimensions).get("customer"),
        "dimensions": json.dumps(list(line.dimensions)),
    } for n, line in enumerate(entry.lines, start=1)])


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


def open_item(conn: Connection, entity: str, item_id: str) -> OpenItem | None:
    row = conn.execute(select(t.items).where(t.items.c.entity == entity,
                                             t.items.c.id == item_id)).mappings().first()
    return None if row is None else _item(row)


def customer_credits(conn: Connection, entity: str, customer: str,
                     currency: str) -> list[OpenItem]:
    """The customer's open credits in one currency (a refund pays out in its own)."""
    return _open_of_kind(conn, entity, customer, currency, ItemKind.CREDIT)


def customer_debits(conn: Connection, entity: str, customer: str,
                    currency: str) -> list[OpenItem]:
    """The customer's open debits in one currency (refunds paid beyond their credits)."""
    return _open_of_kind(conn, entity, customer, currency, ItemKind.DEBIT)


def _open_of_kind(conn: Connection, entity: str, customer: str, currency: str,
                  kind: ItemKind) -> list[OpenItem]:
    rows = conn.execute(select(t.items).where(
        t.items.c.entity == entity, t.items.c.customer == customer,
        t.items.c.currency == currency, t.items.c.kind == kind.value,
        t.items.c.open_minor > 0)).mappings()
    return [_item(r) for r in rows]


def items(conn: Connection, entity: str | None = None,
          only_open: bool = True) -> list[OpenItem]:
    query = select(t.items).order_by(t.items.c.entity, t.items.c.posting_date, t.items.c.id)
    if entity is not None:
        query = query.where(t.items.c.entity == entity)
    if only_open:
        query = query.where(t.items.c.open_minor != 0)
    return [_item(r) for r in conn.execute(query).mappings()]


def _item(r: Any) -> OpenItem:
    return OpenItem(r["id"], r["entity"], r["customer"], ItemKind(r["kind"]), r["document_id"],
                    Money.from_minor(r["original_minor"], r["currency"]),
                    Money.from_minor(r["open_minor"], r["currency"]),
                    Money.from_minor(r["booked_open_minor"], r["booked_currency"]),
                    r["posting_date"], r["due_date"])


def store_items(conn: Connection, opened: Sequence[OpenItem], settled: Sequence[Settlement],
                entry: JournalEntry) -> None:
    if opened:
        conn.execute(insert(t.items), [{
            "entity": i.legal_entity, "id": i.id, "customer": i.customer_id,
            "kind": i.kind.value, "document_id": i.document_id, "currency": i.open.currency,
            "original_minor": i.original.to_minor(), "open_minor": i.open.to_minor(),
            "booked_currency": i.booked_open.currency,
            "booked_open_minor": i.booked_open.to_minor(), "posting_date": i.posting_date,
            "due_date": i.due_date, "entry_id": entry.id} for i in opened])
    for s in settled:
        conn.execute(update(t.items).where(and_(
            t.items.c.entity == s.item.legal_entity, t.items.c.id == s.item.id)).values(
            open_minor=s.item.open.to_minor(), booked_open_minor=s.item.booked_open.to_minor()))
        conn.execute(insert(t.settlements), {
            "entity": s.item.legal_entity, "item_id": s.item.id, "entry_id": entry.id,
            "applied_minor": s.applied.to_minor(), "relieved_minor": s.relieved.to_minor(),
            "posting_date": entry.posting_date})


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
