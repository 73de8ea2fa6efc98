"""Billing's books read in sets, for reconciliation: one SQL statement per figure, streamed.

Rules:
- Every figure is computed by the database over billing's own tables (grouped sums joined
  on the document they belong to), never by loading the billing state: the cost is one
  pass over the rows asked for, and the memory one batch of rows.
- Figures follow the billing core's rules exactly (`state.amount_due`, `value`): an
  invoice's open amount = total - credit memos - payments applied + refunds of those
  payments, dated up to the day asked, never below zero. A payment applies its whole
  amount to the one invoice it names (`payment.pay_invoice`), so its applications sum to
  its amount.
- Streams are ordered by their key in code-point order (`dbsnapshot.code_point_order`).
- Reads run on the caller's connection, so that one snapshot covers them all.
- Tax per document and jurisdiction is summed from the documents' jurisdiction lines
  (`billing_line_taxes`), a credit memo's negative; a document stored before breakdowns
  has its whole tax under jurisdiction "". A (document, jurisdiction) whose tax sums to
  zero (not taxable, exempt, reverse charged) is left out: it owes nothing to reconcile.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Generator, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Connection, Select, case, exists, func, literal, select, union_all

from finsync.dbsnapshot import (
    Digest,
    code_point_order,
    digests,
    in_buckets,
    stream,
    stream_by_key,
)
from finsync.domain.money import Money
from finsync.systems.billing import store
from finsync.systems.billing import tables as t
from finsync.systems.billing.state import BillingConfig, SubscriptionStatus
from finsync.systems.billing.value import bills_nothing_more, contract_value

# A document row: (id, customer id, currency, amount in minor units); plain tuples, as the
# database returns them, since a large book streams millions.
Row = tuple[str, str, str, int]


@dataclass(frozen=True, slots=True)
class ValueRow:
    contract_id: str
    customer_id: str
    value: Money


def open_invoices(conn: Connection, entity: str, as_of: date,
                  buckets: Collection[int] | None = None) -> Iterator[Row]:
    """Each invoice's open amount, never below zero; by invoice id. With `buckets`, only
    the invoices in those digest buckets (`dbsnapshot.bucket_of`)."""
    query = _open_invoices(conn, entity, as_of, buckets)
    return stream_by_key(conn, query)


def open_invoice_digests(conn: Connection, entity: str, currency: str,
                         as_of: date) -> list[Digest]:
    """`open_invoices` as per-bucket digests (`dbsnapshot.digests`)."""
    return digests(conn, _open_invoices(conn, entity, as_of, None).subquery(), currency)


def _open_invoices(conn: Connection, entity: str, as_of: date,
                   buckets: Collection[int] | None) -> Select[Any]:
    """A UNION ALL of the invoices and what moves them, then one GROUP BY, never a join to
    grouped subqueries: with stale planner statistics (right after a bulk load) PostgreSQL
    can re-run such a subquery once per invoice."""
    inv, cm, pay, ref = t.invoices, t.credit_memos, t.payments, t.refunds
    parts = union_all(
        select(inv.c.id.label("id"), inv.c.customer_id.label("customer"),
               inv.c.currency.label("currency"), inv.c.total_minor.label("amount"),
               literal(1).label("invoice"))
        .where(inv.c.legal_entity == entity, inv.c.issue_date <= as_of),
        select(cm.c.invoice_id, literal(""), literal(""), -cm.c.total_minor, literal(0))
        .where(cm.c.legal_entity == entity, cm.c.issue_date <= as_of),
        select(pay.c.invoice_id, literal(""), literal(""), -pay.c.amount_minor, literal(0))
        .where(pay.c.legal_entity == entity, pay.c.received_on <= as_of),
        select(pay.c.invoice_id, literal(""), literal(""), ref.c.amount_minor, literal(0))
        .join(pay, pay.c.id == ref.c.payment_id)
        .where(ref.c.legal_entity == entity, ref.c.issued_on <= as_of,
               pay.c.received_on <= as_of),
    ).subquery()
    total = func.sum(parts.c.amount)
    query = (select(parts.c.id.label("key"), func.max(parts.c.customer).label("customer"),
                    func.max(parts.c.currency).label("currency"),
                    case((total > 0, total), else_=0).label("amount"))
             .group_by(parts.c.id).having(func.sum(parts.c.invoice) > 0))
    if buckets is not None:
        query = query.where(in_buckets(conn, parts.c.id, buckets))
    return query


def customer_balances(conn: Connection, entity: str, currency: str,
                      as_of: date) -> Iterator[tuple[str, int]]:
    """Per customer: invoices - credit memos - payments + refunds, in `currency`."""
    inv, cm, pay, ref = t.invoices, t.credit_memos, t.payments, t.refunds
    parts = union_all(
        select(inv.c.customer_id.label("customer"), inv.c.total_minor.label("amount"))
        .where(inv.c.legal_entity == entity, inv.c.currency == currency,
               inv.c.issue_date <= as_of),
        select(cm.c.customer_id, -cm.c.total_minor)
        .where(cm.c.legal_entity == entity, cm.c.currency == currency,
               cm.c.issue_date <= as_of),
        select(pay.c.customer_id, -pay.c.amount_minor)
        .where(pay.c.legal_entity == entity, pay.c.currency == currency,
               pay.c.received_on <= as_of),
        select(ref.c.customer_id, ref.c.amount_minor)
        .where(ref.c.legal_entity == entity, ref.c.currency == currency,
               ref.c.issued_on <= as_of),
    ).subquery()
    query = (select(parts.c.customer, func.sum(parts.c.amount))
             .group_by(parts.c.customer).order_by(code_point_order(conn, parts.c.customer)))
    for customer, amount in stream(conn, query):
        yield customer, int(amount)


def payments(conn: Connection, entity: str, as_of: date,
             buckets: Collection[int] | None = None) -> Iterator[Row]:
    """Each payment with its amount (a payment applies all of it); by payment id. With
    `buckets`, only the payments in those digest buckets."""
    query = _payments(conn, entity, as_of, buckets)
    return stream_by_key(conn, query)


def payment_digests(conn: Connection, entity: str, currency: str,
                    as_of: date) -> list[Digest]:
    """`payments` as per-bucket digests (`dbsnapshot.digests`)."""
    return digests(conn, _payments(conn, entity, as_of, None).subquery(), currency)


def _payments(conn: Connection, entity: str, as_of: date,
              buckets: Collection[int] | None) -> Select[Any]:
    pay = t.payments
    query = (select(pay.c.id.label("key"), pay.c.customer_id.label("customer"),
                    pay.c.currency.label("currency"), pay.c.amount_minor.label("amount"))
             .where(pay.c.legal_entity == entity, pay.c.received_on <= as_of))
    if buckets is not None:
        query = query.where(in_buckets(conn, pay.c.id, buckets))
    return query


def credit_memos(conn: Connection, entity: str, as_of: date) -> Iterator[tuple[str, Row]]:
    """(contract id or "", memo row with its subtotal) by contract id, then memo id."""
    cm, inv = t.credit_memos, t.invoices
    contract = func.coalesce(inv.c.contract_id, literal(""))
    query = (select(contract, cm.c.id, cm.c.customer_id, cm.c.currency, cm.c.subtotal_minor)
             .outerjoin(inv, inv.c.id == cm.c.invoice_id)
             .where(cm.c.legal_entity == entity, cm.c.issue_date <= as_of)
             .order_by(code_point_order(conn, contract), code_point_order(conn, cm.c.id)))
    for contract_id, key, customer, currency, amount in stream(conn, query):
        yield contract_id, (key, customer, currency, int(amount))


def contract_values(conn: Connection, config: BillingConfig, entity: str) -> Iterator[ValueRow]:
    """Each subscription's value (`value.contract_value`): billed net from SQL sums, the
    fees still to come from its own terms; by contract id. Two ordered streams merged: the
    subscriptions with their versions, and each contract's billed net."""
    billed = _billed_net(conn, entity)
    try:
        pending = next(billed, None)
        for row, versions in _subscriptions(conn, entity):
            while pending is not None and pending[0] < row["id"]:
                pending = next(billed, None)
            net = pending[1] if pending is not None and pending[0] == row["id"] else 0
            billed_net = Money.from_minor(net, row["currency"])
            if _billed_in_full(config, row, versions):
                yield ValueRow(row["id"], row["customer_id"], billed_net)
                continue
            sub = store.subscription_from_rows(row, versions)
            value = contract_value(config, sub, billed_net)
            yield ValueRow(sub.id, sub.contract.customer_id, value)
    finally:
        billed.close()


def _billed_in_full(config: BillingConfig, row: Any, versions: list[dict[str, Any]]) -> bool:
    """`value.bills_nothing_more`, read from the rows: the versions' contracts are parsed
    as plain JSON (end date, prices), not decoded, which is what costs in a large book."""
    contracts = [json.loads(v["contract"]) for v in versions]
    prices = [line["price_id"] for c in contracts for line in c["lines"]]
    return bills_nothing_more(config, SubscriptionStatus(row["status"]), row["billed_through"],
                              row["arrears_through"],
                              date.fromisoformat(contracts[-1]["end_date"]), prices)


# Versions fetched per batch: each carries its contract's JSON (about 1.5 KB), so a batch of
# `STREAM_ROWS` would be the largest thing a reconciliation holds.
VERSION_ROWS = 1_000


def _subscriptions(conn: Connection,
                   entity: str) -> Iterator[tuple[Any, list[dict[str, Any]]]]:
    sub, ver = t.subscriptions, t.contract_versions
    query = (select(sub, ver.c.version.label("v_version"),
                    ver.c.effective_date.label("v_effective_date"),
                    ver.c.amendment_id.label("v_amendment_id"),
                    ver.c.reason.label("v_reason"), ver.c.changes.label("v_changes"),
                    ver.c.contract.label("v_contract"))
             .join(ver, ver.c.contract_id == sub.c.id)
             .where(sub.c.legal_entity == entity)
             .order_by(code_point_order(conn, sub.c.id), ver.c.version))
    # The version columns by position, found once: a name look-up per column and row is
    # what reading a large book's versions cost.
    named = [(n, k[2:]) for n, k in enumerate(query.selected_columns.keys())
             if k.startswith("v_")]
    current: Any = None
    versions: list[dict[str, Any]] = []
    for record in stream(conn, query, VERSION_ROWS):
        row = record._mapping
        if current is not None and row["id"] != current["id"]:
            yield current, versions
            versions = []
        current = row
        versions.append({name: record[n] for n, name in named})
    if current is not None:
        yield current, versions


def _billed_net(conn: Connection, entity: str) -> Generator[tuple[str, int], None, None]:
    """Per contract, invoice subtotals less credit memo subtotals on its invoices, plus
    the drafts still held for tax (`value`)."""
    inv, cm, held = t.invoices, t.credit_memos, t.held_invoices
    parts = union_all(
        select(inv.c.contract_id.label("contract"), inv.c.subtotal_minor.label("amount"))
        .where(inv.c.legal_entity == entity, inv.c.contract_id.is_not(None)),
        select(inv.c.contract_id, -cm.c.subtotal_minor)
        .join(inv, inv.c.id == cm.c.invoice_id)
        .where(cm.c.legal_entity == entity, inv.c.contract_id.is_not(None)),
        select(held.c.contract_id, held.c.subtotal_minor)
        .where(held.c.legal_entity == entity, held.c.contract_id.is_not(None),
               held.c.invoice_id.is_(None)),
    ).subquery()
    query = (select(parts.c.contract, func.sum(parts.c.amount))
             .group_by(parts.c.contract).order_by(code_point_order(conn, parts.c.contract)))
    for contract, amount in stream(conn, query):
        yield contract, int(amount)


@dataclass(frozen=True, slots=True)
class TaxRow:
    document_id: str
    jurisdiction: str
    issue_date: date
    currency: str
    amount_minor: int


def tax_amounts(conn: Connection, entity: str, as_of: date) -> Iterator[TaxRow]:
    """The tax of each invoice and credit memo (negative) per jurisdiction, documents issued
    up to `as_of`; by (document id, jurisdiction)."""
    lt = t.line_taxes
    parts = []
    for doc, sign in ((t.invoices, 1), (t.credit_memos, -1)):
        dated = (doc.c.legal_entity == entity, doc.c.issue_date <= as_of)
        # Rows of zero tax are left out before the join: they add nothing to any sum, and a
        # (document, jurisdiction) they alone make sums to zero, which is left out anyway.
        parts.append(select(lt.c.document_id.label("doc"), lt.c.jurisdiction.label("code"),
                            doc.c.issue_date.label("day"), doc.c.currency.label("currency"),
                            (sign * lt.c.amount_minor).label("amount"))
                     .join(doc, doc.c.id == lt.c.document_id)
                     .where(*dated, lt.c.amount_minor != 0))
        unbroken = ~exists(select(lt.c.document_id).where(lt.c.document_id == doc.c.id))
        parts.append(select(doc.c.id, literal(""), doc.c.issue_date, doc.c.currency,
                            sign * doc.c.tax_total_minor)
                     .where(*dated, doc.c.tax_total_minor != 0, unbroken))
    rows = union_all(*parts).subquery()
    query = (select(rows.c.doc, rows.c.code, func.max(rows.c.day), func.max(rows.c.currency),
                    func.sum(rows.c.amount))
             .group_by(rows.c.doc, rows.c.code).having(func.sum(rows.c.amount) != 0)
             .order_by(code_point_order(conn, rows.c.doc), code_point_order(conn, rows.c.code)))
    for document_id, code, day, currency, amount in stream(conn, query):
        yield TaxRow(document_id, code, day, currency, int(amount))
