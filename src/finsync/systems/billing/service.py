"""The billing platform's service API: one command, one transaction.

Rules:
- `execute` loads and locks only the command's own aggregate (its customer and subscription
  rows, with their documents: see `aggregate`), applies the command through the pure
  `handle`, and in the same transaction writes what changed and appends one canonical
  envelope per emitted event to `billing_outbox`. So a crash never loses an event, and never
  emits one for a command that did not commit; commands on other customers never wait.
- A refused command (`BillingError`, any `DomainError`) rolls back: nothing is written.
- How an event becomes an envelope is the source connector's business: the service is given
  an `EnvelopeWriter` and stores the JSON object it returns.
- The catalogue in force is stored with the state (`billing_products`, `billing_prices`),
  rewritten whenever the configured catalogue differs from the stored one.
- Driver errors become `BillingStorageError`. A lost race (another transaction took the same
  document number, the same position or the same first row) rolls back and runs the command
  again on what that transaction committed, at most `ATTEMPTS_MAX` times in all.
- `Applied.revision` is the stored catalogue's revision (it moves when the configured
  catalogue changes); there is no company-wide counter of commands, as that would be a lock
  every command shares.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, delete, func, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from finsync.domain.invoice import HeldInvoice
from finsync.domain.money import Money
from finsync.domain.party import CustomerAccount
from finsync.domain.payment import Payment
from finsync.systems.billing import aggregate, store
from finsync.systems.billing import tables as t
from finsync.systems.billing.balance import InvoiceBalance, balances
from finsync.systems.billing.catalog import Catalog
from finsync.systems.billing.errors import BillingStorageError
from finsync.systems.billing.event import Emitted
from finsync.systems.billing.handler import Command, handle
from finsync.systems.billing.state import BillingConfig, BillingState, InvoiceRecord
from finsync.systems.billing.store import NOTHING, Selection, StaleNumberError

EnvelopeWriter = Callable[[Emitted, datetime], Mapping[str, object]]

ATTEMPTS_MAX = 5


@dataclass(frozen=True, slots=True)
class Applied:
    """What one committed command did: its events and the outbox rows they became."""

    emitted: tuple[Emitted, ...]
    outbox_seqs: tuple[int, ...]
    revision: int


@dataclass(frozen=True, slots=True)
class OutboxItem:
    seq: int
    source_event_id: str
    type: str
    envelope: str  # canonical envelope, JSON text


@dataclass(frozen=True, slots=True)
class InvoiceSummary:
    id: str
    number: str
    customer_id: str
    contract_id: str | None
    contract_version: int | None
    issue_date: date
    due_date: date
    correlation_id: str
    subtotal: Money
    tax_total: Money
    total: Money
    credited: Money
    paid: Money
    amount_due: Money


class BillingService:
    def __init__(self, engine: Engine, config: BillingConfig, clock: Callable[[], datetime],
                 envelopes: EnvelopeWriter) -> None:
        self._engine, self._config, self._clock = engine, config, clock
        self._envelopes = envelopes
        self._catalog_hash = _catalog_hash(config.catalog)

    @property
    def config(self) -> BillingConfig:
        return self._config

    @property
    def engine(self) -> Engine:
        """The billing database (reconciliation reads it in sets, `reads.BillingReads`)."""
        return self._engine

    # -- commands ------------------------------------------------------------------------
    def execute(self, command: Command) -> Applied:
        """Apply one command and commit its state and outbox together; refused = unchanged."""
        for _ in range(ATTEMPTS_MAX - 1):
            try:
                return self._execute(command)
            except (IntegrityError, StaleNumberError):  # lost a race: run on what won
                pass
        try:
            return self._execute(command)
        except IntegrityError as exc:
            raise BillingStorageError(f"billing database refused a write: {exc.orig}") from exc
        except StaleNumberError as exc:
            raise BillingStorageError(f"billing lost {ATTEMPTS_MAX} races: {exc}") from exc

    def _execute(self, command: Command) -> Applied:
        with self._transaction() as conn:
            revision = self._check_catalog(conn)
            before = aggregate.load_for(conn, self._config, command)
            outcome = handle(before, command)
            store.save(conn, before, outcome.state)
            aggregate.after(conn, command, before, outcome.state)
            seqs = self._append_outbox(conn, outcome.emitted)
            return Applied(outcome.emitted, seqs, revision)

    def _check_catalog(self, conn: Connection) -> int:
        """Keep the stored catalogue current; the head row is written only when it changes."""
        head = conn.execute(select(t.head.c.revision, t.head.c.catalog_hash)
                            .where(t.head.c.id == 1)).one_or_none()
        revision, stored_hash = (0, "") if head is None else (int(head[0]), str(head[1]))
        if head is None:  # a concurrent first command fails on the key and is retried
            conn.execute(insert(t.head), {"id": 1, "revision": 0, "catalog_hash": ""})
        if stored_hash != self._catalog_hash:
            conn.execute(update(t.head).where(t.head.c.id == 1).values(
                revision=t.head.c.revision + 1, catalog_hash=self._catalog_hash))
            _store_catalog(conn, self._config.catalog)
            revision += 1
        return int(revision)

    def _append_outbox(self, conn: Connection, emitted: Sequence[Emitted]) -> tuple[int, ...]:
        now, seqs = self._clock(), []
        for event in emitted:
            envelope = self._envelopes(event, now)
            seq = conn.execute(insert(t.outbox).returning(t.outbox.c.seq), {
                "source_event_id": envelope["source_event_id"], "type": envelope["type"],
                "correlation_id": envelope["correlation_id"],
                "envelope": json.dumps(envelope, sort_keys=True), "created_at": now,
                "published": False}).scalar_one()
            seqs.append(int(seq))
        return tuple(seqs)

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        try:
            with self._engine.begin() as conn:
                yield conn
        except IntegrityError:
            raise
        except DBAPIError as exc:
            raise BillingStorageError(f"billing database error: {exc.orig}") from exc

    # -- reads ---------------------------------------------------------------------------
    def state(self) -> BillingState:
        """The whole company's state (reconciliation and tests; commands never read it)."""
        with self._transaction() as conn:
            return store.load(conn, self._config)

    def invoices(self, *, customer_id: str | None = None,
                 contract_id: str | None = None) -> list[InvoiceSummary]:
        """Issued invoices in issue order, with what was credited, paid and is still due."""
        t_inv = t.invoices.c
        where = [c == v for c, v in ((t_inv.customer_id, customer_id),
                                     (t_inv.contract_id, contract_id)) if v is not None]
        state = self._read(_documents_of(*where) if where else Selection())
        due = balances(state)
        return [_summary(r, due[r.invoice.id]) for r in state.invoices
                if customer_id in (None, r.invoice.customer_id)
                and contract_id in (None, r.invoice.contract_id)]

    def customer(self, customer_id: str) -> CustomerAccount:
        """One customer (`UnknownCustomerError` when there is none)."""
        return self._read(replace(NOTHING, customers=t.customers.c.id == customer_id)).customer(
            customer_id)

    def invoice_record(self, invoice_id: str) -> InvoiceRecord:
        """One issued invoice (`UnknownDocumentError` when there is none)."""
        return self._read(replace(NOTHING, invoices=t.invoices.c.id == invoice_id)).invoice_record(
            invoice_id)

    def payment(self, payment_id: str) -> Payment:
        """One payment (`UnknownDocumentError` when there is none)."""
        return self._read(replace(NOTHING, payments=t.payments.c.id == payment_id)).payment(
            payment_id)

    def _read(self, selection: Selection) -> BillingState:
        with self._transaction() as conn:
            return store.load(conn, self._config, selection)

    def held(self, *, released: bool = False) -> list[HeldInvoice]:
        """Held invoices in the order they were held, each at its latest version; the
        released ones too when `released`."""
        where = None if released else t.held_invoices.c.invoice_id.is_(None)
        return [draft.held for draft in self._read(replace(NOTHING, held=where)).held]

    def find_invoice(self, id_or_number: str) -> str | None:
        with self._transaction() as conn:
            found = conn.execute(select(t.invoices.c.id).where(
                (t.invoices.c.id == id_or_number) | (t.invoices.c.number == id_or_number))
            ).scalar_one_or_none()
            return None if found is None else str(found)

    # -- outbox --------------------------------------------------------------------------
    def pending(self, limit: int = 100) -> list[OutboxItem]:
        """Unpublished envelopes, oldest first."""
        with self._transaction() as conn:
            rows = conn.execute(
                select(t.outbox.c.seq, t.outbox.c.source_event_id, t.outbox.c.type,
                       t.outbox.c.envelope)
                .where(t.outbox.c.published.is_(False)).order_by(t.outbox.c.seq).limit(limit))
            return [OutboxItem(int(r.seq), r.source_event_id, r.type, r.envelope) for r in rows]

    def mark_published(self, seqs: Sequence[int]) -> int:
        if not seqs:
            return 0
        with self._transaction() as conn:
            result = conn.execute(
                update(t.outbox).where(t.outbox.c.seq.in_(list(seqs)),
                                       t.outbox.c.published.is_(False))
                .values(published=True, published_at=self._clock()))
            return int(result.rowcount)

    def outbox_counts(self) -> dict[str, int]:
        with self._transaction() as conn:
            rows = conn.execute(select(t.outbox.c.published, func.count())
                                .group_by(t.outbox.c.published)).all()
        counts = {bool(published): int(n) for published, n in rows}
        return {"published": counts.get(True, 0), "pending": counts.get(False, 0)}


def _documents_of(*where: ColumnElement[bool]) -> Selection:
    """Invoices matching `where`, with their credit memos, payments and those refunds."""
    ids = select(t.invoices.c.id).where(*where)
    paid = select(t.payments.c.id).where(t.payments.c.invoice_id.in_(ids))
    return replace(NOTHING, invoices=t.invoices.c.id.in_(ids),
                   credit_memos=t.credit_memos.c.invoice_id.in_(ids),
                   payments=t.payments.c.invoice_id.in_(ids),
                   refunds=t.refunds.c.payment_id.in_(paid))


def _summary(record: InvoiceRecord, balance: InvoiceBalance) -> InvoiceSummary:
    inv = record.invoice
    return InvoiceSummary(inv.id, inv.number, inv.customer_id, inv.contract_id,
                          inv.contract_version, inv.issue_date, inv.due_date,
                          record.correlation_id, inv.subtotal, inv.tax_total, inv.total,
                          balance.credited, balance.paid, balance.due)


def _catalog_rows(catalog: Catalog) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    products = [{"id": p.id, "name": p.name, "tax_code": p.tax_code,
                 "revenue_pattern": p.revenue_pattern} for p in catalog.products]
    prices = [{"id": plan.id, "product_id": plan.price.product_id,
               "model": plan.price.model.value, "unit_amount": str(plan.price.unit_amount.amount),
               "currency": plan.price.unit_amount.currency,
               "frequency": plan.price.frequency.value,
               "included_quantity": plan.price.included_quantity, "timing": plan.timing.value,
               "tax_behavior": plan.tax_behavior.value,
               "tiers": json.dumps([{"up_to": tier.up_to,
                                     "unit_amount": str(tier.unit_amount.amount),
                                     "flat_amount": str(tier.flat_amount.amount)
                                     if tier.flat_amount else None} for tier in plan.tiers])}
              for plan in catalog.plans]
    return products, prices


def _catalog_hash(catalog: Catalog) -> str:
    text = json.dumps(_catalog_rows(catalog), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _store_catalog(conn: Connection, catalog: Catalog) -> None:
    products, prices = _catalog_rows(catalog)
    conn.execute(delete(t.prices))
    conn.execute(delete(t.products))
    if products:
        conn.execute(insert(t.products), products)
    if prices:
        conn.execute(insert(t.prices), prices)
