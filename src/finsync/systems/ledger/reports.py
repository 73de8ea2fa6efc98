"""Reports from the books: trial balance, general-ledger detail, AR aging, and the check
that each subledger equals its control account. Balances are debit-positive."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Connection, case, func, select

from finsync.domain.money import Money
from finsync.systems.ledger import records
from finsync.systems.ledger import tables as t
from finsync.systems.ledger.ar import BUCKETS, ItemKind, OpenItem, bucket
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


def items_as_of(conn: Connection, entity: str, as_of: date) -> list[OpenItem]:
    """Open items as they stood at the end of `as_of` (later settlements added back)."""
    later: dict[str, tuple[int, int]] = defaultdict(lambda: (0, 0))
    for r in conn.execute(select(t.settlements).where(t.settlements.c.entity == entity,
                                                      t.settlements.c.posting_date > as_of)):
        applied, relieved = later[r.item_id]
        later[r.item_id] = (applied + r.applied_minor, relieved + r.relieved_minor)
    result = []
    for item in records.items(conn, entity, only_open=False):
        if item.posting_date > as_of:
            continue
        applied, relieved = later[item.id]
        open_ = item.open + Money.from_minor(applied, item.open.currency)
        booked = item.booked_open + Money.from_minor(relieved, item.booked_open.currency)
        if not open_.is_zero:
            result.append(OpenItem(item.id, item.legal_entity, item.customer_id, item.kind,
                                   item.document_id, item.original, open_, booked,
                                   item.posting_date, item.due_date))
    return result


def aging(conn: Connection, entity: str, as_of: date) -> list[dict[str, Any]]:
    """Per customer, booked open receivables per bucket (customer credits shown apart)."""
    functional, _ = records.load_entity(conn, entity)
    zero = Money.zero(functional)
    by_customer: dict[str, dict[str, Money]] = {}
    for item in items_as_of(conn, entity, as_of):
        row = by_customer.setdefault(item.customer_id,
                                     {**{b: zero for b in BUCKETS}, "credits": zero})
        key = "credits" if item.kind is ItemKind.CREDIT else bucket(item, as_of)
        row[key] = row[key] + item.booked_open
    return [{"customer": c, **{k: str(v.amount) for k, v in row.items()},
             "total": str(sum((row[b] for b in BUCKETS), zero).amount)}
            for c, row in sorted(by_customer.items())]


def subledger_check(conn: Connection, entity: str, as_of: date) -> dict[str, dict[str, str]]:
    """Each subledger beside its control account; `difference` must be zero."""
    functional, _ = records.load_entity(conn, entity)
    chart = records.load_chart(conn, entity)
    balances = {r.account: r.balance for r in trial_balance(conn, entity, as_of)}
    items = items_as_of(conn, entity, as_of)
    result = {}
    for role, kinds, sign in ((Role.ACCOUNTS_RECEIVABLE, (ItemKind.INVOICE, ItemKind.DEBIT), 1),
                              (Role.CUSTOMER_CREDITS, (ItemKind.CREDIT,), -1)):
        sub = sum((i.booked_open for i in items if i.kind in kinds), Money.zero(functional))
        control = balances.get(chart.code_for(role), Money.zero(functional)) * sign
        result[role.value] = {"subledger": str(sub.amount), "control": str(control.amount),
                              "difference": str((sub - control).amount)}
    return result
