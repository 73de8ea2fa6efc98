"""A Stripe account as reconciliation reads billing (`BillingRecordsPort`), from the mirror.

Rules:
- Everything is read from the local mirror (`mirror`) inside one read snapshot, never from
  Stripe's API during a run; `finsync stripe verify` checks the mirror against the API.
- Figures are Stripe's own (`statement`), as of the day asked (documents dated up to and
  including it), in ISO minor units:
  - an invoice's open amount = total - the customer balance applied to it - credit notes
    - payments applied, never below zero (Stripe's `amount_remaining` on that day). A
    refund leaves the invoice paid, as Stripe does; a voided invoice is open by nothing
    from the day it was voided; an uncollectible one stays open (Stripe keeps it due);
  - a customer's balance = invoices - credit notes - payments received (applied or on
    account) + refunds;
  - a payment is applied as its invoice payments say (one per invoice it paid); an invoice
    paid before Stripe listed its payments (no invoice payment mirrored for it) is paid by
    the payment the mapping names (`statement.invoice`); a succeeded PaymentIntent that
    paid no invoice is money received on account (it applies nothing);
  - a credit note counts with its invoice's contract (the subscription), before tax;
  - a contract and its invoices carry the ids the mapping gives them: the canonical
    contract (and customer) id of a subscription the commercial layer marked (`marks`);
  - a contract's value = its invoices before tax less their credit notes: Stripe bills a
    licensed period in advance when the period starts, and the mapped contract's term ends
    with the current period, so nothing in the term is left to bill.
  - tax, per document and jurisdiction (`tax_amounts`), is what the mapping books: each
    line's tax entries by their rate's jurisdiction (`taxes.document_taxes`, rates read
    from the mirror), "" for tax without a breakdown (an invoice issued before
    `tax_breakdown_from` and its credit notes, a rate that names no country); a voided
    invoice's void memo `<invoice>_void` reverses it on the day it was voided; credit notes
    are negative; a jurisdiction with no tax has no row.
- One Stripe source is one legal entity (its `SourceSettings`); other entities have no
  Stripe documents.
- Every stream is ordered by its key in code-point order. Invoices are streamed from the
  mirror; what moves them (credit notes, invoice payments, intents, refunds) is read once
  per snapshot and held, so memory is that and the per-customer or per-payment sums.
- An object Stripe's own rules make unreadable (a float amount, an unknown currency) is
  left out and logged: the mapping refused the same object and finance sees its exception.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import partial
from typing import TypeVar

from sqlalchemy import Connection, Engine

from finsync.connectors.ports import (
    ContractDocument,
    ContractValue,
    CustomerAmount,
    DocumentAmount,
    TaxAmount,
)
from finsync.connectors.stripe import marks, mirror, statement, taxes
from finsync.connectors.stripe.objects import Obj, child, currency_of, id_of, listed, ref, text
from finsync.connectors.stripe.statement import (
    CreditNoteFacts,
    InvoiceFacts,
    PaymentPart,
    RefundFacts,
)
from finsync.dbsnapshot import read_snapshot
from finsync.domain.errors import MappingError
from finsync.domain.money import Money

log = logging.getLogger(__name__)
T = TypeVar("T")


class StripeBillingRecords:
    """Billing's books of one Stripe source (one account, one legal entity)."""

    def __init__(self, system: str, engine: Engine, source: str, legal_entity: str,
                 tax_breakdown_from: datetime | None = None) -> None:
        self.system, self._engine = system, engine
        self.source, self.legal_entity = source, legal_entity
        self.tax_breakdown_from = tax_breakdown_from

    @contextmanager
    def books(self) -> Iterator[StripeBooks]:
        with read_snapshot(self._engine) as conn:
            yield StripeBooks(conn, self.source, self.legal_entity, self.tax_breakdown_from)


@dataclass
class _Moves:
    """What moves invoices, read once per snapshot."""

    notes: dict[str, list[CreditNoteFacts]] = field(default_factory=lambda: defaultdict(list))
    applied: dict[str, list[PaymentPart]] = field(default_factory=lambda: defaultdict(list))
    intents: dict[str, tuple[PaymentPart, str]] = field(default_factory=dict)
    refunds: list[tuple[RefundFacts, str | None]] = field(default_factory=list)
    customers: dict[str, str] = field(default_factory=dict)  # charge or intent -> customer


@dataclass(frozen=True, slots=True)
class _Invoice:
    """An invoice as of a day, with what moved it by then."""

    facts: InvoiceFacts
    credited: int
    payments: tuple[PaymentPart, ...]

    @property
    def open(self) -> int:
        f = self.facts
        return max(f.total - f.balance_applied - self.credited
                   - sum(p.amount for p in self.payments), 0)


class StripeBooks:
    """`BillingBooks` over one snapshot of the mirror."""

    def __init__(self, conn: Connection, source: str, legal_entity: str,
                 tax_breakdown_from: datetime | None = None) -> None:
        self._conn, self._source, self._entity = conn, source, legal_entity
        self._since = tax_breakdown_from
        self._moves: _Moves | None = None

    # -- BillingBooks ----------------------------------------------------------------------

    def open_invoices(self, legal_entity: str, as_of: date) -> Iterator[DocumentAmount]:
        for inv in self._invoices(legal_entity, as_of):
            f = inv.facts
            yield DocumentAmount(f.id, f.customer, f.currency, inv.open)

    def customer_balances(self, legal_entity: str, currency: str,
                          as_of: date) -> Iterator[CustomerAmount]:
        balances: dict[str, int] = defaultdict(int)
        for inv in self._invoices(legal_entity, as_of):
            if inv.facts.currency == currency:
                balances[inv.facts.customer] += inv.facts.total - inv.credited - sum(
                    p.amount for p in inv.payments)
        moves = self._read_moves() if legal_entity == self._entity else _Moves()
        for part, customer in self._on_account(moves, as_of):
            if part.currency == currency:
                balances[customer] -= part.amount
        for refund, named in moves.refunds:
            if refund.currency == currency and refund.created <= as_of:
                who = (named or moves.customers.get(refund.payment_id)
                       or moves.customers.get(refund.charge))
                if who is not None:
                    balances[who] += refund.amount
        return (CustomerAmount(c, a) for c, a in sorted(balances.items()))

    def payments_applied(self, legal_entity: str, as_of: date) -> Iterator[DocumentAmount]:
        applied: dict[str, DocumentAmount] = {}
        for inv in self._invoices(legal_entity, as_of):
            for part in inv.payments:
                held = applied.get(part.payment_id)
                amount = part.amount + (held.amount_minor if held else 0)
                applied[part.payment_id] = DocumentAmount(part.payment_id, inv.facts.customer,
                                                          part.currency, amount)
        return (d for _, d in sorted(applied.items()))

    def credit_memos(self, legal_entity: str, as_of: date) -> Iterator[ContractDocument]:
        contracts = {inv.facts.id: inv.facts.contract
                     for inv in self._invoices(legal_entity, as_of)}
        moves = self._read_moves() if legal_entity == self._entity else _Moves()
        memos = [ContractDocument(contracts.get(n.invoice, ""), DocumentAmount(
                     n.id, n.customer, n.currency, n.before_tax))
                 for notes in moves.notes.values() for n in notes if n.counts(as_of)]
        return iter(sorted(memos, key=lambda m: (m.contract_id, m.document.document_id)))

    def contract_values(self, legal_entity: str) -> Iterator[ContractValue]:
        if legal_entity != self._entity:
            return
        billed: dict[str, int] = defaultdict(int)
        moves = self._read_moves()
        for facts in self._read("invoice", statement.invoice):
            if facts.contract and facts.issued is not None and facts.voided is None:
                credited = sum(n.before_tax for n in moves.notes.get(facts.id, ())
                               if n.voided is None)
                billed[facts.contract] += facts.before_tax - credited
        for sub in mirror.objects(self._conn, self._source, "subscription"):
            value = _readable("subscription", partial(_contract, billed=billed), sub)
            if value is not None:
                yield value

    def tax_amounts(self, legal_entity: str, as_of: date) -> Iterator[TaxAmount]:
        if legal_entity != self._entity:
            return iter(())
        rates = {str(r["id"]): r for r in mirror.objects(self._conn, self._source, "tax_rate")}
        rows: list[TaxAmount] = []
        dated: dict[str, bool] = {}  # invoice -> carries its breakdown (`taxes.issued_since`)
        for obj in mirror.objects(self._conn, self._source, "invoice"):
            found = _readable("invoice", partial(self._invoice_taxes, rates=rates,
                                                 as_of=as_of), obj)
            if found is not None:
                rows += found
                dated[str(obj["id"])] = taxes.issued_since(obj, self._since)
        for note in mirror.objects(self._conn, self._source, "credit_note"):
            found = _readable("credit_note", partial(
                _note_taxes, rates=rates, dated=dated, as_of=as_of), note)
            rows += found or []
        return iter(sorted(rows, key=lambda r: (r.document_id, r.jurisdiction)))

    def _invoice_taxes(self, obj: Obj, rates: taxes.Rates, as_of: date) -> list[TaxAmount]:
        """An issued invoice's tax, and the reversal of it by its void memo once voided (as
        `documents.void_memo` maps it)."""
        facts = statement.invoice(obj)
        if facts.issued is None or facts.issued > as_of:
            return []
        known = rates if taxes.issued_since(obj, self._since) else None
        sums = taxes.document_taxes(obj, facts.currency, known, "invoice")
        rows = _tax_rows(facts.id, facts.issued, facts.currency, sums, 1)
        written_off = child(obj, "status_transitions").get("marked_uncollectible_at")
        if facts.voided is not None and facts.voided <= as_of and facts.total > 0 \
                and written_off is None:
            rows += _tax_rows(f"{facts.id}_void", facts.voided, facts.currency, sums, -1)
        return rows

    # -- reading ---------------------------------------------------------------------------

    def _invoices(self, legal_entity: str, as_of: date) -> Iterator[_Invoice]:
        """The invoices issued by `as_of` and not voided by then, by id, each with what
        moved it by then."""
        if legal_entity != self._entity:
            return
        moves = self._read_moves()
        for facts in self._read("invoice", statement.invoice):
            if not facts.counts(as_of):
                continue
            credited = sum(n.total for n in moves.notes.get(facts.id, ()) if n.counts(as_of))
            yield _Invoice(facts, credited, _paid(facts, moves, as_of))

    def _on_account(self, moves: _Moves, as_of: date) -> Iterator[tuple[PaymentPart, str]]:
        """Succeeded PaymentIntents that paid no invoice (money received on account)."""
        paying = {p.payment_id for parts in moves.applied.values() for p in parts}
        paying |= {f.payment_id for f in self._read("invoice", statement.invoice)
                   if f.paid > 0}
        for intent_id, (part, customer) in sorted(moves.intents.items()):
            if intent_id not in paying and not part.invoice and part.on <= as_of:
                yield part, customer

    def _read_moves(self) -> _Moves:
        if self._moves is not None:
            return self._moves
        moves = _Moves()
        for note in self._read("credit_note", statement.credit_note):
            moves.notes[note.invoice].append(note)
        for part in self._read("invoice_payment", statement.invoice_payment):
            if part is not None:
                moves.applied[part.invoice].append(part)
        self._read_payers(moves)
        self._moves = moves
        return moves

    def _read_payers(self, moves: _Moves) -> None:
        """Intents (with their customers), charges' customers and refunds."""
        for pi in mirror.objects(self._conn, self._source, "payment_intent"):
            customer = id_of(pi.get("customer"))
            part = _readable("payment_intent", statement.intent, pi)
            if customer is not None:
                moves.customers[str(pi["id"])] = customer
            if part is not None and customer is not None:
                moves.intents[part.payment_id] = (part, customer)
        for charge in mirror.objects(self._conn, self._source, "charge"):
            customer = id_of(charge.get("customer"))
            if customer is not None:
                moves.customers[str(charge["id"])] = customer
        for obj in mirror.objects(self._conn, self._source, "refund"):
            found = _readable("refund", statement.refund, obj)
            if found is not None:
                moves.refunds.append((found, statement.refund_customer(obj)))

    def _read(self, object_type: str, reader: Callable[[Obj], T]) -> Iterator[T]:
        for obj in mirror.objects(self._conn, self._source, object_type):
            found = _readable(object_type, reader, obj)
            if found is not None:
                yield found


def _note_taxes(note: Obj, rates: taxes.Rates, dated: dict[str, bool],
                as_of: date) -> list[TaxAmount]:
    """A credit note's tax, negative; broken down as its invoice is (`dated`)."""
    facts = statement.credit_note(note)
    if not facts.counts(as_of):
        return []
    known = rates if dated.get(facts.invoice, True) else None
    sums = taxes.document_taxes(note, facts.currency, known, "credit_note")
    return _tax_rows(facts.id, facts.created, facts.currency, sums, -1)


def _tax_rows(document_id: str, on: date, currency: str, sums: dict[str, int],
              sign: int) -> list[TaxAmount]:
    """One row per jurisdiction with tax (a jurisdiction of zero tax posts nothing)."""
    month = f"{on.year:04d}-{on.month:02d}"
    return [TaxAmount(document_id, place, month, currency, sign * amount)
            for place, amount in sums.items() if amount != 0]


def _paid(facts: InvoiceFacts, moves: _Moves, as_of: date) -> tuple[PaymentPart, ...]:
    """The payments applied to an invoice by `as_of`: its invoice payments when Stripe
    listed them, else what the invoice says it was paid."""
    listed = moves.applied.get(facts.id)
    if listed:
        return tuple(p for p in listed if p.on <= as_of)
    if facts.paid <= 0 or facts.paid_on is None or facts.paid_on > as_of:
        return ()
    return (PaymentPart(facts.payment_id, facts.id, facts.currency, facts.paid,
                        facts.paid_on),)


def _contract(sub: Obj, billed: dict[str, int]) -> ContractValue:
    path = "subscription"
    sub_id = text(sub, "id", path)
    items = listed(sub, "items", path)
    priced = child(items[0], "price") or child(items[0], "plan") if items else {}
    currency = currency_of(sub if sub.get("currency") else priced, path)
    # a subscription the commercial layer marked is its contract, as the mapping says
    contract = marks.identity(sub, {}) or sub_id
    customer = marks.mark(child(sub, "metadata"), marks.META_CUSTOMER, path) \
        if contract != sub_id else None
    return ContractValue(contract, customer or ref(sub, "customer", path),
                         Money.from_minor(billed.get(contract, 0), currency))


def _readable(object_type: str, read: Callable[[Obj], T], obj: Obj) -> T | None:
    try:
        return read(obj)
    except MappingError as exc:
        log.warning("Stripe %s left out of billing's books: %s", object_type, exc)
        return None
