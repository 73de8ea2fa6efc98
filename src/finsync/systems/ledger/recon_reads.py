"""The ledger's books read in sets, for reconciliation: one SQL statement per figure,
streamed, on the caller's connection (so one snapshot covers them all).

Rules:
- An item's open amount at the end of a day = its open amount now + what settlements
  posted after that day took off it (as `reports.items_as_of`); items posted after the day
  are left out. Credits (customer credits) count negative.
- Open amounts are summed per document (a document has one item; a sum keeps a stream's
  keys unique if one ever has two); documents with nothing open are left out.
- Streams are ordered by their key in code-point order (`dbsnapshot.code_point_order`).
- Balances are debit-positive, in the entity's functional currency, at the end of each day.
- Tax payable is read per document (an invoice's or credit memo's entry) and jurisdiction:
  its net credit in the document's currency (a credit memo's is negative), with the day it
  was posted; tax without a breakdown has the jurisdiction "".
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import date
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    case,
    func,
    literal_column,
    or_,
    select,
    union_all,
)

from finsync.dbsnapshot import (
    Digest,
    code_point_order,
    digests,
    in_buckets,
    stream,
    stream_by_key,
)
from finsync.domain.journal import PeriodStatus
from finsync.domain.money import Money
from finsync.systems.ledger import records
from finsync.systems.ledger import tables as t
from finsync.systems.ledger.ar import ItemKind
from finsync.systems.ledger.chart import Role

# The documents whose entries carry tax (a manual entry to tax payable, a remittance to
# the authority, belongs to no document).
TAX_DOCUMENT_KINDS = ("invoice", "credit_memo")


def _open_as_of(entity: str, as_of: date) -> Any:
    """Per item and per later settlement: (document, customer, currency, signed minor);
    summed per document they give each item's open amount at the end of `as_of`.

    A UNION ALL then one GROUP BY, never a join to a grouped subquery: with stale planner
    statistics (right after a bulk load) PostgreSQL re-ran such a subquery once per item."""
    s, i = t.settlements, t.items

    def signed(amount: Any) -> Any:
        return case((i.c.kind == ItemKind.CREDIT.value, -amount), else_=amount)

    return union_all(
        select(i.c.document_id.label("document"), i.c.customer.label("customer"),
               i.c.currency.label("currency"), signed(i.c.open_minor).label("open"))
        .where(i.c.entity == entity, i.c.posting_date <= as_of),
        select(i.c.document_id, i.c.customer, i.c.currency, signed(s.c.applied_minor))
        .join(i, (i.c.entity == s.c.entity) & (i.c.id == s.c.item_id))
        .where(s.c.entity == entity, s.c.posting_date > as_of, i.c.posting_date <= as_of),
    ).subquery()


def open_items(conn: Connection, entity: str, as_of: date,
               buckets: Collection[int] | None = None) -> Iterator[tuple[str, str, str, int]]:
    """(document, customer, currency, signed open minor) per document with something open.
    With `buckets`, only the documents in those digest buckets (`dbsnapshot.bucket_of`)."""
    query = _open_items(conn, entity, as_of, buckets)
    return stream_by_key(conn, query)


def open_item_digests(conn: Connection, entity: str, currency: str,
                      as_of: date) -> list[Digest]:
    """`open_items` as per-bucket digests (`dbsnapshot.digests`)."""
    return digests(conn, _open_items(conn, entity, as_of, None).subquery(), currency)


def _open_items(conn: Connection, entity: str, as_of: date,
                buckets: Collection[int] | None) -> Select[Any]:
    items = _open_as_of(entity, as_of)
    total = func.sum(items.c.open)
    query = (select(items.c.document.label("key"), func.min(items.c.customer),
                    func.min(items.c.currency).label("currency"), total.label("amount"))
             .group_by(items.c.document).having(total != 0))
    if buckets is not None:
        query = query.where(in_buckets(conn, items.c.document, buckets))
    return query


def customer_open(conn: Connection, entity: str, currency: str,
                  as_of: date) -> Iterator[tuple[str, int]]:
    """(customer, signed open minor in `currency`) per customer with an item."""
    items = _open_as_of(entity, as_of)
    query = (select(items.c.customer, func.sum(items.c.open))
             .where(items.c.currency == currency)
             .group_by(items.c.customer).order_by(code_point_order(conn, items.c.customer)))
    for customer, amount in stream(conn, query):
        yield customer, int(amount)


def applied_by(conn: Connection, entity: str, as_of: date,
               buckets: Collection[int] | None = None) -> Iterator[tuple[str, str, int]]:
    """(settling document, currency, applied minor) per settling document, for settlements
    posted up to `as_of`, in the settled items' currency (as `records.applications`).
    With `buckets`, only the settling documents in those digest buckets."""
    query = _applied_by(conn, entity, as_of, buckets)
    return stream_by_key(conn, query)


def applied_digests(conn: Connection, entity: str, currency: str,
                    as_of: date) -> list[Digest]:
    """`applied_by` as per-bucket digests (`dbsnapshot.digests`)."""
    return digests(conn, _applied_by(conn, entity, as_of, None).subquery(), currency)


def _applied_by(conn: Connection, entity: str, as_of: date,
                buckets: Collection[int] | None) -> Select[Any]:
    s = t.settlements
    settling, item = t.entries.alias("settling"), t.items.alias("item")
    query = (select(settling.c.document_id.label("key"),
                    func.min(item.c.currency).label("currency"),
                    func.sum(s.c.applied_minor).label("amount"))
             .join(settling, settling.c.id == s.c.entry_id)
             .join(item, (item.c.entity == s.c.entity) & (item.c.id == s.c.item_id))
             .where(s.c.entity == entity, s.c.posting_date <= as_of,
                    settling.c.document_id.is_not(None))
             .group_by(settling.c.document_id))
    if buckets is not None:
        query = query.where(in_buckets(conn, settling.c.document_id, buckets))
    return query


def balances(conn: Connection, entity: str, accounts: Sequence[str],
             days: Sequence[date], currency: str | None = None) -> list[Mapping[str, Money]]:
    """Each account's debit-positive balance at the end of each day, in one pass over the
    accounts' lines (the (entity, account, posting_date, side, amounts) index alone). With
    `currency`, only the lines of documents in that currency, in that currency (a line in
    the functional currency has no transaction amount).

    The lines are summed per account, day and side in SQL, with no expression per line
    (14 conditional sums per line were most of the read), and the sums made cumulative at
    each of `days` here."""
    if not days or not accounts:
        return [{} for _ in days]
    functional, _ = records.load_entity(conn, entity)
    lines = t.lines
    minor: ColumnElement[int] = lines.c.amount_minor
    where: list[ColumnElement[bool]] = []
    if currency is not None:
        minor = func.coalesce(lines.c.txn_amount_minor, lines.c.amount_minor)
        # A plain comparison, not coalesce(txn_currency, functional): the planner filters
        # it in the index.
        told = lines.c.txn_currency == currency
        where.append(or_(lines.c.txn_currency.is_(None), told) if currency == functional
                     else told)
    query = (select(lines.c.account, lines.c.posting_date, lines.c.side, func.sum(minor))
             .where(lines.c.entity == entity, lines.c.account.in_(list(accounts)),
                    lines.c.posting_date <= max(days), *where)
             .group_by(lines.c.account, lines.c.posting_date, lines.c.side))
    sums: dict[str, list[int]] = {}
    for account, posted, side, amount in conn.execute(query):
        at = sums.setdefault(account, [0] * len(days))
        signed = int(amount) if side == "debit" else -int(amount)
        for n, day in enumerate(days):
            if posted <= day:
                at[n] += signed
    code = currency or functional
    return [{account: Money.from_minor(at[n], code) for account, at in sorted(sums.items())}
            for n in range(len(days))]


def tax_payable(conn: Connection, entity: str,
                as_of: date) -> Iterator[tuple[str, str, date, str, int]]:
    """(document, jurisdiction, posting date, currency, net credit minor) per document and
    jurisdiction with a tax payable line posted up to `as_of`; by (document, jurisdiction)."""
    lines, entries, accounts = t.lines, t.entries, t.accounts
    payable = select(accounts.c.code).where(accounts.c.entity == entity,
                                            accounts.c.role == Role.TAX_PAYABLE.value)
    minor = func.coalesce(lines.c.txn_amount_minor, lines.c.amount_minor)
    signed = case((lines.c.side == "credit", minor), else_=-minor)
    # Grouped by the column itself; '' inline (a bound '' would differ from the select's).
    jurisdiction = func.coalesce(lines.c.jurisdiction, literal_column("''"))
    query = (select(entries.c.document_id, lines.c.jurisdiction,
                    func.min(entries.c.posting_date),
                    func.min(func.coalesce(lines.c.txn_currency, lines.c.currency)),
                    func.sum(signed))
             .join(entries, entries.c.id == lines.c.entry_id)
             .where(lines.c.entity == entity, lines.c.account.in_(payable.scalar_subquery()),
                    lines.c.posting_date <= as_of,
                    entries.c.document_kind.in_(TAX_DOCUMENT_KINDS),
                    entries.c.document_id.is_not(None))
             .group_by(entries.c.document_id, lines.c.jurisdiction)
             .order_by(code_point_order(conn, entries.c.document_id),
                       code_point_order(conn, jurisdiction)))
    for document, code, posted, currency, amount in stream(conn, query):
        yield document, code or "", posted, currency, int(amount)


def period_status(conn: Connection, entity: str, on: date) -> PeriodStatus:
    return records.period_for(conn, entity, on).status
