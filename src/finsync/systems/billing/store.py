"""Billing state in the database: load it (whole, or the rows a selection names), write what
a command changed.

Rules:
- `load` rebuilds the exact `BillingState` the core last returned: same documents, same order
  (the `position` columns), same subscription positions and contract history, same document
  numbers. With a `Selection` it rebuilds the part of it those rows make, in the same order.
- `save` writes only the difference between the state before and after one command, in the
  caller's transaction: issued documents are appended (the core never edits one; a changed
  prefix is a programmer error) after every stored one (`position`: max + 1 on SQLite, the
  column's sequence on PostgreSQL, so concurrent writers never race for it), customers are
  upserted, a subscription's billing position is updated and its new contract versions are
  inserted, and the document numbers taken are moved on only from the value that was read
  (`StaleNumberError` otherwise: a concurrent command took them; run it again).
- `changes` builds those rows without writing them (bulk loaders reuse it).
- Money goes in as integer minor units; documents also keep their canonical JSON body, written
  and read by the one codec (`domain.codec`), so a body is exactly what the hub reads.
- A version's diff is stored as a list of `[op, line_id, before, after]`; rows written
  before contract-level changes were spelled `CONTRACT_LEVEL` have "" there, and read the same.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    Table,
    false,
    func,
    insert,
    select,
    text,
    update,
)

from finsync.domain import codec
from finsync.domain.clock import Period
from finsync.domain.contract import (
    ChangeOp,
    ContractAmendment,
    ContractChange,
    ContractLine,
    SubscriptionContract,
)
from finsync.domain.invoice import CreditMemo, DocumentLine, Invoice, RatedUsage, UsageRecord
from finsync.domain.money import Money
from finsync.domain.party import CustomerAccount
from finsync.domain.payment import Payment, Refund
from finsync.systems.billing import tables as t
from finsync.systems.billing.clock import next_step_on
from finsync.systems.billing.cycle import Cycle
from finsync.systems.billing.draft import HeldDraft
from finsync.systems.billing.state import (
    BillingConfig,
    BillingState,
    DeclinedPayment,
    InvoiceRecord,
    Numbering,
    Subscription,
    SubscriptionStatus,
    VersionInForce,
)

T = TypeVar("T")


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _body(value: object, currency: str | None = None) -> str:
    """A document (or a tuple of them) in its canonical JSON shape."""
    return _dumps(codec.encode(value, currency))


def _appended(old: tuple[T, ...], new: tuple[T, ...], what: str) -> tuple[T, ...]:
    assert new[:len(old)] == old, f"billing {what} are append-only"
    return new[len(old):]


# -- save ---------------------------------------------------------------------------------
POSITIONED = (t.subscriptions, t.invoices, t.credit_memos, t.payments, t.declines, t.refunds,
              t.usage_records, t.usage_charges)


@dataclass(frozen=True, slots=True)
class Changes:
    """The rows one state change writes. Rows of the `POSITIONED` tables get their `position`
    when written (after every row already stored), so the issue order holds across loads."""

    inserts: dict[Table, list[dict[str, Any]]] = field(default_factory=dict)
    updates: dict[Table, list[dict[str, Any]]] = field(default_factory=dict)  # by "id"
    numbers: tuple[tuple[str, str, int, int], ...] = ()  # kind, entity, last before, after

    def insert(self, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            self.inserts.setdefault(table, []).extend(rows)


def changes(old: BillingState, new: BillingState) -> Changes:
    """Every row `old -> new` writes: documents appended (a changed prefix is a programmer
    error), customers upserted, subscriptions' positions updated with their new versions."""
    out = Changes()
    _customer_changes(out, old, new)
    _subscription_changes(out, old, new)
    _held_changes(out, old, new)
    for record in _appended(old.invoices, new.invoices, "invoices"):
        _invoice_rows(out, record)
    for memo in _appended(old.credit_memos, new.credit_memos, "memos"):
        _memo_rows(out, memo)
    out.insert(t.payments, [_payment_row(x) for x in
                            _appended(old.payments, new.payments, "payments")])
    out.insert(t.declines, [_decline_row(x) for x in
                            _appended(old.declines, new.declines, "declines")])
    out.insert(t.refunds, [_refund_row(x) for x in
                           _appended(old.refunds, new.refunds, "refunds")])
    out.insert(t.usage_records, [_usage_row(x) for x in
                                 _appended(old.usage, new.usage, "usage records")])
    out.insert(t.usage_charges, [_charge_row(x) for x in _appended(
        old.usage_charges, new.usage_charges, "usage charges")])
    before = {(kind, entity): n for kind, entity, n in old.numbering.last}
    return replace(out, numbers=tuple(
        (kind, entity, before.get((kind, entity), 0), n)
        for kind, entity, n in new.numbering.last if before.get((kind, entity), 0) != n))


def sync_positions(conn: Connection) -> None:
    """After a bulk load that gave positions itself: PostgreSQL's position sequences start
    after the rows stored (SQLite needs nothing)."""
    if conn.dialect.name != "postgresql":
        return
    for table in POSITIONED:
        conn.execute(text(f"SELECT setval('{table.name}_position_seq', "
                          f"(SELECT coalesce(max(position) + 1, 0) FROM {table.name}), false)"))


class StaleNumberError(Exception):
    """Another transaction took a document number first: run the command again."""


def save(conn: Connection, old: BillingState, new: BillingState) -> None:
    """Write the difference `old -> new` in the caller's transaction."""
    write(conn, changes(old, new))


def write(conn: Connection, out: Changes) -> None:
    drawn = conn.dialect.name == "postgresql"  # positions from the column's sequence
    for table, rows in out.inserts.items():
        if table in POSITIONED and not drawn:
            start = conn.execute(select(func.coalesce(func.max(table.c.position), -1) + 1)
                                 ).scalar_one()
            rows = [{**row, "position": i} for i, row in enumerate(rows, int(start))]
        conn.execute(insert(table), rows)
    for table, rows in out.updates.items():
        for row in rows:
            conn.execute(update(table).where(table.c.id == row["id"]), row)
    numbers = t.document_numbers
    for kind, entity, before, after in out.numbers:
        if before == 0:  # a concurrent first number fails on the key and is retried
            conn.execute(insert(numbers), {"kind": kind, "legal_entity": entity,
                                           "last_number": after})
            continue
        moved = conn.execute(update(numbers).where(
            numbers.c.kind == kind, numbers.c.legal_entity == entity,
            numbers.c.last_number == before).values(last_number=after))
        if moved.rowcount != 1:
            raise StaleNumberError(f"{kind} numbers of {entity} moved on")


def _customer_changes(out: Changes, old: BillingState, new: BillingState) -> None:
    before = {c.id: c for c in old.customers}
    for customer in new.customers:
        if before.get(customer.id) == customer:
            continue
        row = {"id": customer.id, "name": customer.name,
               "legal_entity": customer.legal_entity, "currency": customer.currency,
               "billing_country": customer.billing_country, "version": customer.version,
               "body": _body(customer)}
        if customer.id in before:
            out.updates.setdefault(t.customers, []).append(row)
        else:
            out.insert(t.customers, [row])


def _subscription_changes(out: Changes, old: BillingState, new: BillingState) -> None:
    before = {s.id: s for s in old.subscriptions}
    for sub in new.subscriptions:
        known = before.get(sub.id)
        if known is sub:
            continue
        row = {"id": sub.id, **subscription_row(sub)}
        if known is None:
            out.insert(t.subscriptions, [row])
        else:
            out.updates.setdefault(t.subscriptions, []).append(row)
        history = _appended(known.history if known else (), sub.history, "contract versions")
        amendments = {a.version: a for a in sub.amendments}
        out.insert(t.contract_versions,
                   [_version_row(v, amendments.get(v.contract.version)) for v in history])


def subscription_row(sub: Subscription) -> dict[str, Any]:
    """The mutable columns of a subscription's row."""
    cycle = sub.cycle
    return {
        "customer_id": sub.contract.customer_id, "legal_entity": sub.contract.legal_entity,
        "currency": sub.contract.currency, "version": sub.contract.version,
        "status": sub.status.value, "correlation_id": sub.correlation_id, "anchor": sub.anchor,
        "term_months": sub.term_months, "auto_renew": sub.auto_renew,
        "arrears_months": sub.arrears_months, "billed_through": sub.billed_through,
        "arrears_through": sub.arrears_through,
        "cycle_start": cycle.period.start if cycle else None,
        "cycle_end": cycle.period.end if cycle else None,
        "cycle_months": cycle.months if cycle else None,
        "prepaid_balance_minor": sub.prepaid_balance.to_minor(),
        "renewal_lines": _body(sub.renewal_lines, sub.contract.currency),
        "next_step_on": next_step_on(sub),
    }


def _version_row(version: VersionInForce, amendment: ContractAmendment | None) -> dict[str, Any]:
    changes = [[c.op.value, c.line_id, c.before, c.after] for c in amendment.changes] \
        if amendment else []
    return {"contract_id": version.contract.id, "version": version.contract.version,
            "effective_date": version.effective_date,
            "amendment_id": amendment.id if amendment else None,
            "reason": amendment.reason if amendment else None, "changes": _dumps(changes),
            "contract": _body(version.contract)}


def _line_row(line: DocumentLine) -> dict[str, Any]:
    return {"product_id": line.product_id, "description": line.description,
            "quantity": line.quantity, "currency": line.amount.currency,
            "amount_minor": line.amount.to_minor(), "tax_amount_minor": line.tax_amount.to_minor(),
            "service_start": line.service_start, "service_end": line.service_end,
            "proration": line.proration}


def _totals(doc: Invoice | CreditMemo) -> dict[str, Any]:
    return {"customer_id": doc.customer_id, "legal_entity": doc.legal_entity,
            "currency": doc.currency, "issue_date": doc.issue_date, "number": doc.number,
            "subtotal_minor": doc.subtotal.to_minor(), "tax_total_minor": doc.tax_total.to_minor(),
            "total_minor": doc.total.to_minor()}


def _invoice_rows(out: Changes, record: InvoiceRecord) -> None:
    inv = record.invoice
    out.insert(t.invoices, [{
        "id": inv.id, **_totals(inv), "contract_id": inv.contract_id,
        "contract_version": inv.contract_version, "due_date": inv.due_date,
        "correlation_id": record.correlation_id, "sources": _dumps(list(record.sources)),
        "body": _body(inv)}])
    out.insert(t.invoice_lines, [
        {"invoice_id": inv.id, "line_no": n, "line_id": line.line_id, "source_line_id": source,
         **_line_row(line)}
        for n, (line, source) in enumerate(zip(inv.lines, record.sources, strict=True), 1)])
    out.insert(t.line_taxes, _tax_rows(inv.id, inv.lines))


def _memo_rows(out: Changes, memo: CreditMemo) -> None:
    out.insert(t.credit_memos, [{
        "id": memo.id, **_totals(memo), "invoice_id": memo.invoice_id,
        "reason": memo.reason, "body": _body(memo)}])
    out.insert(t.credit_memo_lines, [
        {"credit_memo_id": memo.id, "line_no": n, "invoice_line_id": line.line_id,
         **_line_row(line)} for n, line in enumerate(memo.lines, 1)])
    out.insert(t.line_taxes, _tax_rows(memo.id, memo.lines))


def _tax_rows(document_id: str, lines: Sequence[DocumentLine]) -> list[dict[str, Any]]:
    """Each line's jurisdiction lines, keyed by the line's number and their own."""
    return [{"document_id": document_id, "line_no": n, "detail_no": k,
             "jurisdiction": d.jurisdiction, "tax_type": d.tax_type, "rate": str(d.rate),
             "treatment": d.treatment.value, "currency": d.amount.currency,
             "taxable_minor": d.taxable.to_minor(), "amount_minor": d.amount.to_minor()}
            for n, line in enumerate(lines, 1) for k, d in enumerate(line.taxes, 1)]


def _held_changes(out: Changes, old: BillingState, new: BillingState) -> None:
    """Held drafts: a new one inserted, a new version of one updated in place."""
    before = {d.id: d for d in old.held}
    for draft in new.held:
        known = before.get(draft.id)
        if known == draft:
            continue
        held = draft.held
        row = {"id": held.id, "customer_id": held.customer_id, "contract_id": held.contract_id,
               "legal_entity": held.legal_entity, "currency": held.currency,
               "issue_date": held.issue_date, "version": held.version, "code": held.code,
               "transient": held.transient, "subtotal_minor": held.subtotal.to_minor(),
               "invoice_id": held.invoice_id, "body": _body(draft)}
        if known is None:
            out.insert(t.held_invoices, [row])
        else:
            out.updates.setdefault(t.held_invoices, []).append(row)


def _payment_row(p: Payment) -> dict[str, Any]:
    return {"id": p.id, "invoice_id": p.applications[0].invoice_id, "customer_id": p.customer_id,
            "legal_entity": p.legal_entity, "currency": p.amount.currency,
            "amount_minor": p.amount.to_minor(), "received_on": p.received_on,
            "body": _body(p)}


def _decline_row(d: DeclinedPayment) -> dict[str, Any]:
    return {"payment_id": d.payment_id, "invoice_id": d.invoice_id,
            "currency": d.amount.currency, "amount_minor": d.amount.to_minor(),
            "attempted_on": d.attempted_on, "reason": d.reason}


def _refund_row(r: Refund) -> dict[str, Any]:
    return {"id": r.id, "payment_id": r.payment_id, "customer_id": r.customer_id,
            "legal_entity": r.legal_entity, "currency": r.amount.currency,
            "amount_minor": r.amount.to_minor(), "issued_on": r.issued_on, "reason": r.reason,
            "body": _body(r)}


def _usage_row(u: UsageRecord) -> dict[str, Any]:
    return {"id": u.id, "contract_id": u.contract_id, "product_id": u.product_id,
            "quantity": u.quantity, "occurred_on": u.occurred_on}


def _charge_row(c: RatedUsage) -> dict[str, Any]:
    return {"id": c.id, "contract_id": c.contract_id, "line_id": c.line_id,
            "product_id": c.product_id, "period_start": c.period_start,
            "period_end": c.period_end, "used": c.used, "included": c.included,
            "billable": c.billable, "currency": c.amount.currency,
            "amount_minor": c.amount.to_minor(), "drawn_minor": c.drawn.to_minor(),
            "invoiced_minor": c.invoiced.to_minor(), "invoice_id": c.invoice_id}


# -- load ---------------------------------------------------------------------------------
Where = ColumnElement[bool]


@dataclass(frozen=True, slots=True)
class Selection:
    """Which rows of each table a state is made of (None: all of them). Customers and
    subscriptions are read `FOR UPDATE` when `lock`, and so are the document numbers when
    `lock_numbers` (the command may issue a document); `FOR
    UPDATE` is left out on SQLite, whose write transaction already holds the database."""

    customers: Where | None = None
    subscriptions: Where | None = None
    invoices: Where | None = None
    credit_memos: Where | None = None
    payments: Where | None = None
    declines: Where | None = None
    refunds: Where | None = None
    usage: Where | None = None
    usage_charges: Where | None = None
    held: Where | None = None
    lock: bool = False
    lock_numbers: bool = False


NOTHING = Selection(false(), false(), false(), false(), false(), false(), false(), false(),
                    false(), false())  # no row at all: `replace` it to name a few


def load(conn: Connection, config: BillingConfig,
         selection: Selection | None = None) -> BillingState:
    """The billing state as the last committed command left it; with a selection, only the
    rows it names, in the same order as the whole state has them."""
    def rows(table: Table, where: Where | None, order: Any) -> list[Any]:
        query = select(table).order_by(order)
        return list(conn.execute(query if where is None else query.where(where)).mappings())

    sel = selection or Selection()
    query = select(t.customers).order_by(t.customers.c.id)
    if sel.customers is not None:
        query = query.where(sel.customers)
    customers = tuple(_read(CustomerAccount, r["body"], "customer") for r in conn.execute(
        query.with_for_update() if sel.lock else query).mappings())
    return BillingState(
        config,
        customers=customers,
        subscriptions=_load_subscriptions(conn, sel.subscriptions, sel.lock),
        invoices=tuple(InvoiceRecord(_read(Invoice, r["body"], "invoice"),
                                     r["correlation_id"], tuple(json.loads(r["sources"])))
                       for r in rows(t.invoices, sel.invoices, t.invoices.c.position)),
        credit_memos=tuple(_read(CreditMemo, r["body"], "credit_memo") for r in rows(
            t.credit_memos, sel.credit_memos, t.credit_memos.c.position)),
        payments=tuple(_read(Payment, r["body"], "payment")
                       for r in rows(t.payments, sel.payments, t.payments.c.position)),
        declines=tuple(DeclinedPayment(r["payment_id"], r["invoice_id"],
                                       Money.from_minor(r["amount_minor"], r["currency"]),
                                       r["attempted_on"], r["reason"])
                       for r in rows(t.declines, sel.declines, t.declines.c.position)),
        refunds=tuple(_read(Refund, r["body"], "refund")
                      for r in rows(t.refunds, sel.refunds, t.refunds.c.position)),
        usage=tuple(UsageRecord(r["id"], r["contract_id"], r["product_id"], r["quantity"],
                                r["occurred_on"])
                    for r in rows(t.usage_records, sel.usage, t.usage_records.c.position)),
        usage_charges=tuple(_charge(r) for r in rows(t.usage_charges, sel.usage_charges,
                                                     t.usage_charges.c.position)),
        numbering=_numbering(conn, sel.lock_numbers),
        held=tuple(_read(HeldDraft, r["body"], "held_invoice")
                   for r in rows(t.held_invoices, sel.held, t.held_invoices.c.seq)),
    )


def _numbering(conn: Connection, lock: bool) -> Numbering:
    """Every legal entity's last numbers (a few rows), `FOR UPDATE` when `lock`: a document
    may be numbered in the contract's entity, which need not be its customer's."""
    numbers = t.document_numbers
    query = select(numbers).order_by(numbers.c.kind, numbers.c.legal_entity)
    return Numbering(tuple(sorted((r.kind, r.legal_entity, int(r.last_number))
                                  for r in conn.execute(
                                      query.with_for_update() if lock else query))))


def _read(tp: type[T], text: str, path: str, currency: str | None = None) -> T:
    """A JSON column as `_body` wrote it."""
    return codec.decode(tp, json.loads(text), path, currency)


def _charge(r: Any) -> RatedUsage:
    def minor(key: str) -> Money:
        return Money.from_minor(r[key], r["currency"])

    return RatedUsage(r["id"], r["contract_id"], r["line_id"], r["product_id"],
                      r["period_start"], r["period_end"], r["used"], r["included"],
                      r["billable"], minor("amount_minor"), minor("drawn_minor"),
                      minor("invoiced_minor"), r["invoice_id"])


def _change(stored: list[Any]) -> ContractChange:
    """One `[op, line_id, before, after]` of a stored diff (billing's ops name no attribute)."""
    op, line_id, before, after = stored
    return ContractChange(ChangeOp(op), line_id, before, after)


def _load_subscriptions(conn: Connection, where: Where | None,
                        lock: bool) -> tuple[Subscription, ...]:
    subs = select(t.subscriptions).order_by(t.subscriptions.c.position)
    if where is not None:
        subs = subs.where(where)
    rows = list(conn.execute(subs.with_for_update() if lock else subs).mappings())
    if not rows:
        return ()
    query = select(t.contract_versions).order_by(t.contract_versions.c.contract_id,
                                                 t.contract_versions.c.version)
    if where is not None:
        query = query.where(t.contract_versions.c.contract_id.in_([r["id"] for r in rows]))
    versions: dict[str, list[Any]] = {}
    for row in conn.execute(query).mappings():
        versions.setdefault(row["contract_id"], []).append(row)
    return tuple(_subscription(row, versions[row["id"]]) for row in rows)


def _subscription(row: Any, version_rows: list[Any]) -> Subscription:
    history, amendments = [], []
    for v in version_rows:
        contract = _read(SubscriptionContract, v["contract"], "contract")
        history.append(VersionInForce(v["effective_date"], contract))
        if v["amendment_id"] is not None:
            changes = tuple(_change(c) for c in json.loads(v["changes"]))
            amendments.append(ContractAmendment(v["amendment_id"], contract.id, contract.version,
                                                v["effective_date"], v["reason"], changes,
                                                contract))
    current = history[-1].contract
    currency = current.currency
    cycle = None if row["cycle_start"] is None else Cycle(
        Period(row["cycle_start"], row["cycle_end"]), row["cycle_months"])
    renewal = _read(tuple[ContractLine, ...], row["renewal_lines"], "renewal_lines", currency)
    return Subscription(
        current, row["correlation_id"], row["anchor"], row["term_months"], row["auto_renew"],
        row["arrears_months"], SubscriptionStatus(row["status"]), row["billed_through"], cycle,
        row["arrears_through"], renewal,
        Money.from_minor(row["prepaid_balance_minor"], currency), tuple(history),
        tuple(amendments))


def subscription_from_rows(row: Any, version_rows: Sequence[Any]) -> Subscription:
    """One subscription from its `billing_subscriptions` row and its `contract_versions`
    rows in version order (mappings), for reads that stream subscriptions."""
    return _subscription(row, list(version_rows))
