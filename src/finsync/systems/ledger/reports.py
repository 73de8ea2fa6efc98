"""Reports from the books: trial balance, general-ledger detail, AR aging, and the check
that each subledger equals its control account. Balances are debit-positive."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Connection, Subquery, case, func, select, union_all

from finsync.domain.money import Money
from finsync.systems.ledger import records
from finsync.systems.ledger import tables as t
from finsync.systems.ledger.ar import BUCKETS, ItemKind, OpenItem
from finsync.systems.ledger.chart import Role


@dataclass(frozen=True, slots=True)
class BalanceRow:
    account: str
    name: str
    type: str
    debit: Money
    credit: Money

    @property
    def balance(self) -> Money:
        return self.debit - self.credit


def trial_balance(conn: Connection, entity: str, as_of: date) -> list[BalanceRow]:
    functional, _ = records.load_entity(conn, entity)
    signed = case((t.lines.c.side == "debit", t.lines.c.amount_minor), else_=0)
    credit = case((t.lines.c.side == "credit", t.lines.c.amount_minor), else_=0)
    sums = {row.account: (int(row.debit), int(row.credit)) for row in conn.execute(
        select(t.lines.c.account, func.sum(signed).label("debit"),
               func.sum(credit).label("credit"))
        .where(t.lines.c.entity == entity, t.lines.c.posting_date <= as_of)
        .group_by(t.lines.c.account))}
    chart = records.load_chart(conn, entity)
    return [BalanceRow(a.code, a.name, a.type.value,
                       Money.from_minor(sums[a.code][0], functional),
                       Money.from_minor(sums[a.code][1], functional))
            for a in chart.accounts if a.code in sums]


@dataclass(frozen=True, slots=True)
class RollForwardRow:
    """An account from `start` to `end`: opening balance (debit-positive, before `start`),
    debits and credits posted in between, closing balance."""

    account: str
    name: str
    type: str
    opening: Money
    debit: Money
    credit: Money

    @property
    def closing(self) -> Money:
        return self.opening + self.debit - self.credit


def roll_forward(conn: Connection, entity: str, start: date,
                 end: date) -> list[RollForwardRow]:
    """Every account with a balance or a movement, added up in one pass over the account
    index (entity, account, date, side, amount)."""
    functional, _ = records.load_entity(conn, entity)
    line = t.lines.c
    signed = case((line.side == "debit", line.amount_minor), else_=-line.amount_minor)
    before = line.posting_date < start
    sums = {row.account: (int(row.opening), int(row.debit), int(row.credit))
            for row in conn.execute(
                select(line.account,
                       func.sum(case((before, signed), else_=0)).label("opening"),
                       func.sum(case(((~before) & (line.side == "debit"), line.amount_minor),
                                     else_=0)).label("debit"),
                       func.sum(case(((~before) & (line.side == "credit"), line.amount_minor),
                                     else_=0)).label("credit"))
                .where(line.entity == entity, line.posting_date <= end)
                .group_by(line.account))}
    chart = records.load_chart(conn, entity)
    return [RollForwardRow(a.code, a.name, a.type.value,
                           *(Money.from_minor(v, functional) for v in sums[a.code]))
            for a in chart.accounts if a.code in sums and sums[a.code] != (0, 0, 0)]


def general_ledger(conn: Connection, entity: str, account: str,
                   until: date | None = None) -> list[dict[str, Any]]:
    query = (select(t.lines, t.entries.c.memo, t.entries.c.correlation_id)
             .join(t.entries, t.entries.c.id == t.lines.c.entry_id)
             .where(t.lines.c.entity == entity, t.lines.c.account == account)
             .order_by(t.lines.c.posting_date, t.entries.c.posted_at, t.lines.c.entry_id,
                       t.lines.c.line_no))
    if until is not None:
        query = query.where(t.lines.c.posting_date <= until)
    running, rows = 0, []
    for r in conn.execute(query).mappings():
        running += r["amount_minor"] if r["side"] == "debit" else -r["amount_minor"]
        rows.append({"date": r["posting_date"], "entry": r["entry_id"], "memo": r["memo"],
                     "side": r["side"],
                     "amount": str(Money.from_minor(r["amount_minor"], r["currency"]).amount),
                     "balance": str(Money.from_minor(running, r["currency"]).amount),
                     "currency": r["currency"], "customer": r["customer"],
                     "correlation_id": r["correlation_id"]})
    return rows


def _items_at(entity: str, as_of: date) -> Subquery:
    """The items open at the end of `as_of`, with what was open then (`open_at`) and its
    booked value (`booked_at`): what is open now, plus what settlements posted later took.

    Two branches, each on its own index: the items open now (partial index on open items),
    and the items settled since whose settlements are later than `as_of` (settlements by
    date). Most items of a company are paid, so neither reads the whole subledger."""
    s, i = t.settlements.c, t.items.c
    later = (select(s.item_id, func.sum(s.applied_minor).label("applied"),
                    func.sum(s.relieved_minor).label("relieved"))
             .where(s.entity == entity, s.posting_date > as_of)
             .group_by(s.item_id).cte("later"))  # one CTE: both branches read it
    columns = (i.id, i.customer, i.kind, i.document_id, i.currency, i.original_minor,
               i.booked_currency, i.posting_date, i.due_date)
    open_now = (select(*columns, (i.open_minor + func.coalesce(later.c.applied, 0))
                       .label("open_at"),
                       (i.booked_open_minor + func.coalesce(later.c.relieved, 0))
                       .label("booked_at"))
                .select_from(t.items.outerjoin(later, later.c.item_id == i.id))
                .where(i.entity == entity, i.open_minor != 0, i.posting_date <= as_of))
    closed_since = (select(*columns, (i.open_minor + later.c.applied).label("open_at"),
                           (i.booked_open_minor + later.c.relieved).label("booked_at"))
                    .select_from(t.items.join(later, later.c.item_id == i.id))
                    .where(i.entity == entity, i.open_minor == 0, i.posting_date <= as_of))
    both = union_all(open_now, closed_since).subquery("both")
    return select(both).where(both.c.open_at != 0).subquery("at")


def items_as_of(conn: Connection, entity: str, as_of: date) -> list[OpenItem]:
    """Open items as they stood at the end of `as_of` (later settlements added back)."""
    at = _items_at(entity, as_of)
    rows = conn.execute(select(at).order_by(at.c.posting_date, at.c.id))
    return [OpenItem(r.id, entity, r.customer, ItemKind(r.kind), r.document_id,
                     Money.from_minor(r.original_minor, r.currency),
                     Money.from_minor(r.open_at, r.currency),
                     Money.from_minor(r.booked_at, r.booked_currency),
                     r.posting_date, r.due_date) for r in rows]


@dataclass(frozen=True, slots=True)
class Credits:
    """Customer credits open at a day: the largest (`items`), how many there are and their
    booked (functional) total over all of them."""

    items: tuple[OpenItem, ...]
    count: int
    booked_total: Money


def credits_as_of(conn: Connection, entity: str, as_of: date, limit: int) -> Credits:
    """Customer credits (unapplied cash, over-credits) open at the end of `as_of`, largest
    booked value first, at most `limit`; with their count and booked total."""
    functional, _ = records.load_entity(conn, entity)
    at = _items_at(entity, as_of)
    credit = at.c.kind == ItemKind.CREDIT.value
    count, booked = conn.execute(select(func.count(), func.coalesce(func.sum(at.c.booked_at), 0))
                                 .select_from(at).where(credit)).one()
    rows = conn.execute(select(at).where(credit)
                        .order_by(at.c.booked_at.desc(), at.c.id).limit(limit))
    items = tuple(OpenItem(r.id, entity, r.customer, ItemKind(r.kind), r.document_id,
                           Money.from_minor(r.original_minor, r.currency),
                           Money.from_minor(r.open_at, r.currency),
                           Money.from_minor(r.booked_at, r.booked_currency),
                           r.posting_date, r.due_date) for r in rows)
    return Credits(items, int(count), Money.from_minor(int(booked), functional))


def _bucket(at: Subquery, as_of: date) -> Any:
    """`ar.bucket` in SQL, by due date: late <= 0 days is current, and so on."""
    due = at.c.due_date
    return case((at.c.kind == ItemKind.CREDIT.value, "credits"),
                (due >= as_of, BUCKETS[0]),
                (due >= as_of - timedelta(days=30), BUCKETS[1]),
                (due >= as_of - timedelta(days=60), BUCKETS[2]),
                (due >= as_of - timedelta(days=90), BUCKETS[3]),
                else_=BUCKETS[4])


def aging(conn: Connection, entity: str, as_of: date) -> list[dict[str, Any]]:
    """Per customer, booked open receivables per bucket (customer credits shown apart),
    added up in the database: one row per customer and bucket comes back."""
    functional, _ = records.load_entity(conn, entity)
    at = _items_at(entity, as_of)
    bucket_of = _bucket(at, as_of).label("bucket")
    rows = conn.execute(select(at.c.customer, bucket_of,
                               func.sum(at.c.booked_at).label("booked"))
                        .group_by(at.c.customer, bucket_of).order_by(at.c.customer))
    by_customer: dict[str, dict[str, int]] = {}
    for r in rows:
        by_customer.setdefault(r.customer, {})[r.bucket] = int(r.booked)

    def money(minor: int) -> str:
        return str(Money.from_minor(minor, functional).amount)

    return [{"customer": customer,
             **{b: money(sums.get(b, 0)) for b in (*BUCKETS, "credits")},
             "total": money(sum(sums.get(b, 0) for b in BUCKETS))}
            for customer, sums in sorted(by_customer.items())]


def subledger_check(conn: Connection, entity: str, as_of: date) -> dict[str, dict[str, str]]:
    """Each subledger beside its control account; `difference` must be zero."""
    functional, _ = records.load_entity(conn, entity)
    chart = records.load_chart(conn, entity)
    balances = {r.account: r.balance for r in trial_balance(conn, entity, as_of)}
    at = _items_at(entity, as_of)
    booked = {r.kind: int(r.booked) for r in conn.execute(
        select(at.c.kind, func.sum(at.c.booked_at).label("booked")).group_by(at.c.kind))}
    result = {}
    for role, kinds, sign in ((Role.ACCOUNTS_RECEIVABLE, (ItemKind.INVOICE, ItemKind.DEBIT), 1),
                              (Role.CUSTOMER_CREDITS, (ItemKind.CREDIT,), -1)):
        sub = Money.from_minor(sum(booked.get(k.value, 0) for k in kinds), functional)
        control = balances.get(chart.code_for(role), Money.zero(functional)) * sign
        result[role.value] = {"subledger": str(sub.amount), "control": str(control.amount),
                              "difference": str((sub - control).amount)}
    return result
