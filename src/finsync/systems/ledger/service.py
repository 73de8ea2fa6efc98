"""The embedded ledger's service API: set up books, post documents and entries, manage
periods. One transaction per call; a refused call writes nothing.

Idempotency: every posting carries the caller's key. The entry row holds the key (unique)
and a hash of the body, in the same transaction as the lines and the AR changes: the same
key again returns the first entry; the same key with another body is refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from finsync.domain.errors import DomainError
from finsync.domain.fingerprint import fingerprint
from finsync.domain.ids import derive_id
from finsync.domain.invoice import CreditMemo, Invoice
from finsync.domain.journal import AccountingPeriod, JournalEntry, PeriodStatus
from finsync.domain.money import Money
from finsync.domain.payment import Payment, Refund
from finsync.systems.ledger import beancount, records, reports
from finsync.systems.ledger import tables as t
from finsync.systems.ledger.ar import ItemKind, OpenItem
from finsync.systems.ledger.chart import Chart, Role
from finsync.systems.ledger.documents import (
    Books,
    Posting,
    post_credit_memo,
    post_invoice,
    post_payment,
    post_refund,
)
from finsync.systems.ledger.errors import (
    IdempotencyMismatchError,
    LedgerError,
    PeriodNotFoundError,
)
from finsync.systems.ledger.fx import Rate
from finsync.systems.ledger.governance import Governor
from finsync.systems.ledger.periods import check_posting, check_transition, year_of_periods
from finsync.systems.ledger.rules import AccountMap, Leg


@dataclass(frozen=True, slots=True)
class Posted:
    entry_id: str
    legal_entity: str
    posting_date: date
    replayed: bool  # True when the key had been posted before


@dataclass(frozen=True, slots=True)
class Source:
    """Where a posting comes from: the hub's correlation id and canonical references."""

    correlation_id: str | None = None
    refs: tuple[tuple[str, str], ...] = ()
    approved: bool = False
    # An approved re-route books the document on this date (the first open period).
    posting_date: date | None = None


Build = Callable[[Connection, Books], Posting]


@dataclass(frozen=True, slots=True)
class Request:
    """One posting of a batch (`post_many`)."""

    kind: str  # invoice | credit_memo | payment | refund | journal_entry
    document: Any
    key: str
    source: Source = Source()


@dataclass(frozen=True, slots=True)
class _Plan:
    """How one document posts: what it is, where and when, and how its lines are built."""

    kind: str
    document_id: str
    body: Any
    entity: str
    on: date
    memo: str
    source: Source
    build: Build
    reverses: str | None = None

    @property
    def body_hash(self) -> str:
        return fingerprint(self.body)


def _assumed(books: Books, document_id: str, customer: str, kind: ItemKind, amount: Money,
             on: date) -> OpenItem:
    """The item a summary-posted document is assumed to meet (see `LedgerService.preview`)."""
    return OpenItem(document_id, books.legal_entity, customer, kind, document_id, amount,
                    amount, books.convert(amount), on, on)


def _invoice_plan(invoice: Invoice, source: Source, _assumed_items: bool) -> _Plan:
    return _Plan("invoice", invoice.id, invoice, invoice.legal_entity, invoice.issue_date,
                 f"Invoice {invoice.number}", source,
                 lambda conn, books: post_invoice(invoice, books))


def _credit_memo_plan(memo: CreditMemo, source: Source, assumed_items: bool) -> _Plan:
    def build(conn: Connection, books: Books) -> Posting:
        invoice = _assumed(books, memo.invoice_id, memo.customer_id, ItemKind.INVOICE,
                           memo.total, memo.issue_date) if assumed_items \
            else records.open_item(conn, memo.legal_entity, memo.invoice_id)
        debits = () if assumed_items else records.customer_debits(
            conn, memo.legal_entity, memo.customer_id, memo.currency)
        return post_credit_memo(memo, books, invoice, debits)

    return _Plan("credit_memo", memo.id, memo, memo.legal_entity, memo.issue_date,
                 f"Credit memo {memo.number} ({memo.reason})", source, build)


def _payment_plan(payment: Payment, source: Source, assumed_items: bool) -> _Plan:
    def build(conn: Connection, books: Books) -> Posting:
        if assumed_items:
            applied: dict[str, Money] = {}
            for a in payment.applications:
                applied[a.invoice_id] = applied[a.invoice_id] + a.amount \
                    if a.invoice_id in applied else a.amount
            found = {invoice: _assumed(books, invoice, payment.customer_id, ItemKind.INVOICE,
                                       amount, payment.received_on)
                     for invoice, amount in applied.items()}
        else:
            found = {a.invoice_id: item for a in payment.applications
                     if (item := records.open_item(conn, payment.legal_entity, a.invoice_id))}
        debits = () if assumed_items else records.customer_debits(
            conn, payment.legal_entity, payment.customer_id, payment.amount.currency)
        return post_payment(payment, books, found, debits)

    return _Plan("payment", payment.id, payment, payment.legal_entity, payment.received_on,
                 f"Payment {payment.id}", source, build)


def _refund_plan(refund: Refund, source: Source, assumed_items: bool) -> _Plan:
    def build(conn: Connection, books: Books) -> Posting:
        credits = [_assumed(books, f"{refund.id}:credit", refund.customer_id, ItemKind.CREDIT,
                            refund.amount, refund.issued_on)] if assumed_items \
            else records.customer_credits(conn, refund.legal_entity, refund.customer_id,
                                          refund.amount.currency)
        reopened = None
        if refund.reopens_invoice and assumed_items:
            reopened = _assumed(books, refund.reopens_invoice, refund.customer_id,
                                ItemKind.INVOICE, refund.amount, refund.issued_on)
        elif refund.reopens_invoice:
            reopened = records.open_item(conn, refund.legal_entity, refund.reopens_invoice)
        return post_refund(refund, books, credits, reopened)

    return _Plan("refund", refund.id, refund, refund.legal_entity, refund.issued_on,
                 f"Refund {refund.id}", source, build)


def _entry_plan(entry: JournalEntry, source: Source, _assumed_items: bool) -> _Plan:
    def build(conn: Connection, books: Books) -> Posting:
        legs = [(Leg(line.account, line.amount, line.dimensions), line.side.value)
                for line in entry.lines]
        return Posting(books.lines([leg for leg, side in legs if side == "debit"],
                                   [leg for leg, side in legs if side == "credit"]))

    return _Plan("journal_entry", entry.id, entry, entry.legal_entity, entry.posting_date,
                 entry.memo, Source(source.correlation_id or entry.correlation_id,
                                    source.refs or entry.source_refs, source.approved),
                 build, reverses=entry.reverses)


_PLANS: dict[str, Callable[[Any, Source, bool], _Plan]] = {
    "invoice": _invoice_plan, "credit_memo": _credit_memo_plan, "payment": _payment_plan,
    "refund": _refund_plan, "journal_entry": _entry_plan}


class LedgerService:
    def __init__(self, engine: Engine, clock: Callable[[], datetime],
                 governor: Governor | None = None) -> None:
        self.engine, self._clock, self._governor = engine, clock, governor or Governor()
        self._setups: dict[str, tuple[str, AccountMap, Chart]] = {}

    # -- set-up -------------------------------------------------------------------------
    def create_entity(self, entity: str, name: str, functional_currency: str, chart: Chart,
                      accounts: AccountMap | None = None) -> None:
        accounts = accounts or AccountMap()
        with self.engine.begin() as conn:
            conn.execute(insert(t.entities), {
                "id": entity, "name": name, "functional_currency": functional_currency,
                "account_map": json.dumps({
                    "revenue_by_product": dict(accounts.revenue_by_product),
                    "recognised_on_invoice": sorted(accounts.recognised_on_invoice),
                    "credit_reason_roles": {k: v.value for k, v in
                                            accounts.credit_reason_roles.items()}})})
            conn.execute(insert(t.accounts), [
                {"entity": entity, "code": a.code, "name": a.name, "type": a.type.value,
                 "role": a.role.value if a.role else None} for a in chart.accounts])

    def open_year(self, entity: str, year: int) -> None:
        with self.engine.begin() as conn:
            records.load_entity(conn, entity)
            have = {p.name for p in records.list_periods(conn, entity)}
            rows = [{"entity": entity, "name": p.name, "start": p.start, "end": p.end,
                     "status": p.status.value}
                    for p in year_of_periods(entity, year) if p.name not in have]
            if rows:
                conn.execute(insert(t.periods), rows)

    def has_entity(self, entity: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(t.entities.c.id).where(t.entities.c.id == entity)
                                ).first() is not None

    def set_rate(self, rate: Rate) -> None:
        """Record a rate; the same rate again is a no-op, a different one is refused
        (entries already booked at it would no longer agree with the table)."""
        with self.engine.begin() as conn:
            known = conn.execute(select(t.fx_rates.c.rate).where(
                t.fx_rates.c.base == rate.base, t.fx_rates.c.quote == rate.quote,
                t.fx_rates.c.effective == rate.effective)).scalar_one_or_none()
            if known is not None:
                if Decimal(known) != rate.rate:
                    raise LedgerError(f"{rate.base}/{rate.quote} on {rate.effective} is already "
                                      f"{known}; add a rate for a later date instead")
                return
            conn.execute(insert(t.fx_rates), {"base": rate.base, "quote": rate.quote,
                                              "effective": rate.effective,
                                              "rate": str(rate.rate)})

    # -- postings ---------------------------------------------------------------------
    def post_invoice(self, invoice: Invoice, key: str, source: Source = Source()) -> Posted:
        return self._post(key, self._plan("invoice", invoice, source))

    def post_credit_memo(self, memo: CreditMemo, key: str, source: Source = Source()) -> Posted:
        return self._post(key, self._plan("credit_memo", memo, source))

    def post_payment(self, payment: Payment, key: str, source: Source = Source()) -> Posted:
        return self._post(key, self._plan("payment", payment, source))

    def post_refund(self, refund: Refund, key: str, source: Source = Source()) -> Posted:
        return self._post(key, self._plan("refund", refund, source))

    def post_entry(self, entry: JournalEntry, key: str, source: Source = Source()) -> Posted:
        """A journal entry as given (revenue journals, manual entries), in any currency."""
        return self._post(key, self._plan("journal_entry", entry, source))

    def post_many(self, requests: Sequence[Request]) -> list[Posted | DomainError]:
        """Several postings in one call and one transaction, in order (a later one sees what
        an earlier one opened). Each posting has its own savepoint: a refused posting is
        answered with its error and writes nothing; the others still post."""
        outcomes: list[Posted | DomainError] = []
        with self._governor.call(), self.engine.begin() as conn:
            for request in requests:
                try:
                    outcomes.append(self._post_nested(conn, request.key, self._plan(
                        request.kind, request.document, request.source)))
                except DomainError as exc:
                    outcomes.append(exc)
        return outcomes

    def preview(self, kind: str, document: Any) -> JournalEntry:
        """The entry the posting rules make for a document, without posting it.

        A summary posting keeps no AR items per document, so the document is rendered
        against the item it would normally meet: a credit memo or payment application
        relieves receivables by its full amount, a refund pays out the customer's credits.
        Lines on a subledger control account (receivables, customer credits) keep only the
        `customer` dimension; the others keep none, so that a summary can add them up.
        """
        plan = self._plan(kind, document, Source(), assumed_items=True)
        with self.engine.connect() as conn:
            entry, _period, _posting = self._book(conn, f"preview:{kind}:{plan.document_id}",
                                                  plan)
            chart = self._setup(conn, plan.entity)[2]
        controls = {chart.code_for(Role.ACCOUNTS_RECEIVABLE), chart.code_for(Role.CUSTOMER_CREDITS)}
        return replace(entry, lines=tuple(
            replace(line, dimensions=tuple((k, v) for k, v in line.dimensions
                                           if k == "customer" and line.account in controls))
            for line in entry.lines))

    def _plan(self, kind: str, document: Any, source: Source,
              assumed_items: bool = False) -> _Plan:
        make = _PLANS.get(kind)
        if make is None:
            raise LedgerError(f"the ledger posts no {kind!r} documents")
        plan = make(document, source, assumed_items)
        # An approved re-route books the document in the first open period.
        return replace(plan, on=source.posting_date) if source.posting_date else plan

    def reverse(self, entry_id: str, on: date, key: str, source: Source = Source()) -> Posted:
        """Fix a posted journal entry by a reversing entry linked to it."""
        original = self.entry(entry_id)
        if original.reverses is None and self._touches_items(entry_id):
            raise LedgerError(f"{entry_id} settled or opened AR items: correct the document "
                              "with a credit memo instead")
        return self.post_entry(original.reversal(derive_id("je", key), on), key, source)

    def _touches_items(self, entry_id: str) -> bool:
        with self.engine.connect() as conn:
            opened = conn.execute(select(t.items.c.id).where(t.items.c.entry_id == entry_id))
            settled = conn.execute(select(t.settlements.c.id)
                                   .where(t.settlements.c.entry_id == entry_id))
            return opened.first() is not None or settled.first() is not None

    def _post(self, key: str, plan: _Plan) -> Posted:
        with self._governor.call():
            try:
                with self.engine.begin() as conn:
                    return self._post_in(conn, key, plan)
            except IntegrityError:
                with self.engine.begin() as conn:  # a concurrent call with the same key won
                    if (known := self._known(conn, key, plan.body_hash)) is not None:
                        return known
                raise

    def _post_nested(self, conn: Connection, key: str, plan: _Plan) -> Posted:
        try:
            with conn.begin_nested():
                return self._post_in(conn, key, plan)
        except IntegrityError:
            if (known := self._known(conn, key, plan.body_hash)) is not None:
                return known  # a concurrent call with the same key won
            raise

    def _post_in(self, conn: Connection, key: str, plan: _Plan) -> Posted:
        if (known := self._known(conn, key, plan.body_hash)) is not None:
            return known
        entry, period, posting = self._book(conn, key, plan)
        records.insert_entry(conn, entry, period=period.name, key=key,
                             body_hash=plan.body_hash, kind=plan.kind,
                             document_id=plan.document_id, approved=plan.source.approved,
                             at=self._clock())
        records.store_items(conn, posting.opened, posting.settled, entry)
        return Posted(entry.id, plan.entity, plan.on, replayed=False)

    def _known(self, conn: Connection, key: str, body_hash: str) -> Posted | None:
        row = records.entry_by_key(conn, key)
        if row is None:
            return None
        if row["body_hash"] != body_hash:
            raise IdempotencyMismatchError(f"key {key!r} was posted with another body "
                                           f"(entry {row['id']})")
        return Posted(row["id"], row["entity"], row["posting_date"], replayed=True)

    def _book(self, conn: Connection, key: str,
              plan: _Plan) -> tuple[JournalEntry, AccountingPeriod, Posting]:
        functional, accounts, chart = self._setup(conn, plan.entity)
        period = records.period_for(conn, plan.entity, plan.on)
        check_posting(period, plan.source.approved)

        def convert(money: Money) -> Money:
            if money.currency == functional:
                return money
            return records.rates_for(conn, money.currency, functional, plan.on).convert(
                money, functional, plan.on)

        posting = plan.build(conn, Books(plan.entity, functional, chart, accounts, convert))
        for line in posting.lines:
            chart.get(line.account)  # an unknown account refuses the whole posting
        entry = JournalEntry(derive_id("je", key), plan.entity, plan.on, plan.memo,
                             posting.lines, plan.source.correlation_id, plan.reverses,
                             plan.source.refs)
        return entry, period, posting

    def _setup(self, conn: Connection, entity: str) -> tuple[str, AccountMap, Chart]:
        """An entity's currency, account map and chart; they never change once created,
        so they are read once per service."""
        if entity not in self._setups:
            functional, accounts = records.load_entity(conn, entity)
            self._setups[entity] = (functional, accounts, records.load_chart(conn, entity))
        return self._setups[entity]

    # -- periods ------------------------------------------------------------------------
    def set_period_status(self, entity: str, name: str, to: PeriodStatus, actor: str,
                          reason: str | None = None) -> AccountingPeriod:
        """Soft-close, close or reopen a period; every change is logged with who and why."""
        with self.engine.begin() as conn:
            period = next((p for p in records.list_periods(conn, entity) if p.name == name),
                          None)
            if period is None:
                raise PeriodNotFoundError(f"{entity} has no period {name}")
            check_transition(period, to, actor, reason)
            conn.execute(update(t.periods).where(t.periods.c.entity == entity,
                                                 t.periods.c.name == name)
                         .values(status=to.value))
            conn.execute(insert(t.period_log), {
                "entity": entity, "period": name, "from_status": period.status.value,
                "to_status": to.value, "actor": actor, "reason": reason, "at": self._clock()})
            return replace(period, status=to)

    def period_status(self, entity: str, on: date) -> PeriodStatus:
        with self.engine.connect() as conn:
            return records.period_for(conn, entity, on).status

    def periods(self, entity: str | None = None) -> list[AccountingPeriod]:
        with self.engine.connect() as conn:
            return records.list_periods(conn, entity)

    def period_log(self, entity: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.period_log).where(t.period_log.c.entity == entity)
                                .order_by(t.period_log.c.id)).mappings()
            return [dict(r) for r in rows]

    # -- reading ------------------------------------------------------------------------
    def find(self, key: str) -> Posted | None:
        with self.engine.connect() as conn:
            row = records.entry_by_key(conn, key)
        return None if row is None else Posted(row["id"], row["entity"], row["posting_date"],
                                               replayed=True)

    def trial_balance(self, entity: str, as_of: date) -> list[reports.BalanceRow]:
        with self.engine.connect() as conn:
            return reports.trial_balance(conn, entity, as_of)

    def general_ledger(self, entity: str, account: str,
                       until: date | None = None) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            records.load_chart(conn, entity).get(account)
            return reports.general_ledger(conn, entity, account, until)

    def aging(self, entity: str, as_of: date) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return reports.aging(conn, entity, as_of)

    def open_items(self, entity: str, as_of: date) -> list[OpenItem]:
        with self.engine.connect() as conn:
            return reports.items_as_of(conn, entity, as_of)

    def applications(self, entity: str, as_of: date) -> list[tuple[str, str, Money]]:
        with self.engine.connect() as conn:
            return records.applications(conn, entity, as_of)

    def subledger_check(self, entity: str, as_of: date) -> dict[str, dict[str, str]]:
        with self.engine.connect() as conn:
            return reports.subledger_check(conn, entity, as_of)

    def entities(self) -> list[tuple[str, str]]:
        with self.engine.connect() as conn:
            return [(r.id, r.functional_currency) for r in conn.execute(
                select(t.entities.c.id, t.entities.c.functional_currency)
                .order_by(t.entities.c.id))]

    def export_beancount(self) -> str:
        with self.engine.connect() as conn:
            return beancount.export(
                (entity, currency, records.load_chart(conn, entity),
                 records.entries(conn, entity=entity))
                for entity, currency in self.entities())

    def entries(self, entity: str | None = None) -> list[JournalEntry]:
        with self.engine.connect() as conn:
            return records.entries(conn, entity=entity)

    def entry(self, entry_id: str) -> JournalEntry:
        with self.engine.connect() as conn:
            found = records.entries(conn, entry_ids=[entry_id])
        if not found:
            raise LedgerError(f"no journal entry {entry_id}")
        return found[0]
