"""Reading and writing the ledger's rows (SQLAlchemy Core), money as minor units."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from json.encoder import encode_basestring_ascii as _quoted
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
from finsync.systems.ledger.ar import ItemKind, OpenItem, Settlement
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


# Column orders of the tuples `entry_row`, `line_rows`, `item_row` and `settlement_row`
# make, for `bulk.insert_rows`.
ENTRY_COLUMNS = ("id", "entity", "posting_date", "period", "memo", "idempotency_key",
                 "body_hash", "document_kind", "document_id", "correlation_id", "reverses",
                 "source_refs", "approved", "posted_at")
LINE_COLUMNS = ("entry_id", "line_no", "entity", "posting_date", "account", "side",
                "amount_minor", "currency", "txn_amount_minor", "txn_currency", "customer",
                "dimensions", "jurisdiction")
ITEM_COLUMNS = ("entity", "id", "customer", "kind", "document_id", "currency",
                "original_minor", "open_minor", "booked_currency", "booked_open_minor",
                "posting_date", "due_date", "entry_id")
SETTLEMENT_COLUMNS = ("entity", "item_id", "entry_id", "applied_minor", "relieved_minor",
                      "posting_date")


def entry_row(entry: JournalEntry, *, period: str, key: str, body_hash: str, kind: str,
              document_id: str | None, approved: bool, at: Any) -> tuple[Any, ...]:
    return (entry.id, entry.legal_entity, entry.posting_date, period, entry.memo, key,
            body_hash, kind, document_id, entry.correlation_id, entry.reverses,
            pairs_json(entry.source_refs), approved, at)


def line_rows(entry: JournalEntry) -> list[tuple[Any, ...]]:
    rows = []
    entry_id, entity, on = entry.id, entry.legal_entity, entry.posting_date
    for n, line in enumerate(entry.lines, start=1):
        dimensions = line.dimensions
        foreign = line.transaction_amount
        # A side's value by identity: an enum's `.value` is a descriptor call per line.
        side = DEBIT if line.side is Side.DEBIT else CREDIT
        customer, jurisdiction = _customer_and_jurisdiction(dimensions)
        rows.append((entry_id, n, entity, on, line.account, side, line.amount.to_minor(),
                     line.amount.currency, None if foreign is None else foreign.to_minor(),
                     None if foreign is None else foreign.currency,
                     customer, pairs_json(dimensions), jurisdiction))
    return rows


DEBIT, CREDIT = Side.DEBIT.value, Side.CREDIT.value


def _customer_and_jurisdiction(dimensions: tuple[tuple[str, str], ...]
                                ) -> tuple[str | None, str | None]:
    """The values of dimensions `customer` and `jurisdiction` (the last of each, as
    `dict(dimensions)` keeps it), in one pass."""
    customer = jurisdiction = None
    for key, value in dimensions:
        if key == "customer":
            customer = value
        elif key == JURISDICTION:
            jurisdiction = value
    return customer, jurisdiction


def pairs_json(pairs: tuple[tuple[str, str], ...]) -> str:
    """`json.dumps(list(pairs))`, written directly: dimensions and source references are
    pairs of strings, and the json module's general path was a tenth of a posting's cost."""
    try:
        return "[" + ", ".join([f"[{_quoted(k)}, {_quoted(v)}]" for k, v in pairs]) + "]"
    except (TypeError, ValueError):  # not pairs of strings: the general path
        return json.dumps(list(pairs))


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


def item_row(item: OpenItem, entry_id: str) -> tuple[Any, ...]:
    return (item.legal_entity, item.id, item.customer_id, item.kind.value, item.document_id,
            item.open.currency, item.original.to_minor(), item.open.to_minor(),
            item.booked_open.currency, item.booked_open.to_minor(), item.posting_date,
            item.due_date, entry_id)


def settlement_row(s: Settlement, entry_id: str, on: date) -> tuple[Any, ...]:
    return (s.item.legal_entity, s.item.id, entry_id, s.applied.to_minor(),
            s.relieved.to_minor(), on)


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
