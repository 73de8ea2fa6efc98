"""The embedded ledger's service API: set up books, post documents and entries, manage
periods. One transaction per call; a refused call writes nothing.

Idempotency: every posting carries the caller's key. The entry row holds the key (unique)
and a hash of the body, in the same transaction as the lines and the AR changes: the same
key again returns the first entry; the same key with another body is refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from finsync.domain.dispute import DisputeClosure, DisputeFunds
from finsync.domain.errors import DomainError
from finsync.domain.ids import derive_id
from finsync.domain.invoice import CreditMemo, Invoice
from finsync.domain.journal import AccountingPeriod, JournalEntry, PeriodStatus
from finsync.domain.money import Money
from finsync.domain.party import CustomerAccount
from finsync.domain.payment import Payment, Refund
from finsync.systems.ledger import batch, beancount, parties, records, reports
from finsync.systems.ledger import tables as t
from finsync.systems.ledger.ar import OpenItem
from finsync.systems.ledger.batch import Item, Posted, Setup
from finsync.systems.ledger.chart import Chart, Role
from finsync.systems.ledger.errors import LedgerError, PeriodNotFoundError
from finsync.systems.ledger.fx import Rate
from finsync.systems.ledger.governance import Governor
from finsync.systems.ledger.periods import check_transition, year_of_periods
from finsync.systems.ledger.plans import NO_SOURCE, Plan, Request, Source, plan_for
from finsync.systems.ledger.rules import JURISDICTION, AccountMap

__all__ = ["LedgerService", "Posted", "Request", "Source"]


def _planned(request: Request) -> Plan | DomainError:
    """A request's plan, or why it has none (an unknown kind), answered in its slot."""
    try:
        return plan_for(request.kind, request.document, request.source)
    except DomainError as exc:
        return exc


# Told of every period change inside its transaction, with the period-log row it wrote
# (the composition root records it in the audit trail, which the ledger does not know).
PeriodWitness = Callable[[Connection, dict[str, Any]], None]


class LedgerService:
    def __init__(self, engine: Engine, clock: Callable[[], datetime],
                 governor: Governor | None = None,
                 witness: PeriodWitness | None = None, *,
                 reader: Engine | None = None) -> None:
        """`reader`: the engine its reports and look-ups read through (default `engine`);
        one that takes no write lock keeps them from waiting behind postings."""
        self.engine, self._clock, self._governor = engine, clock, governor or Governor()
        self._witness = witness
        self._reader = reader or engine
        self._setups: dict[str, Setup] = {}

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
        with self._reader.connect() as conn:
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
    def post_invoice(self, invoice: Invoice, key: str, source: Source = NO_SOURCE) -> Posted:
        return self._post(Item(key, plan_for("invoice", invoice, source)))

    def post_credit_memo(self, memo: CreditMemo, key: str, source: Source = NO_SOURCE) -> Posted:
        return self._post(Item(key, plan_for("credit_memo", memo, source)))

    def post_payment(self, payment: Payment, key: str, source: Source = NO_SOURCE) -> Posted:
        return self._post(Item(key, plan_for("payment", payment, source)))

    def post_refund(self, refund: Refund, key: str, source: Source = NO_SOURCE) -> Posted:
        return self._post(Item(key, plan_for("refund", refund, source)))

    def post_dispute_funds(self, funds: DisputeFunds, key: str,
                           source: Source = NO_SOURCE) -> Posted:
        return self._post(Item(key, plan_for("dispute_funds", funds, source)))

    def post_dispute_closure(self, closure: DisputeClosure, key: str,
                             source: Source = NO_SOURCE) -> Posted:
        """A closure with something unrecovered (nothing unrecovered is refused: there is
        no entry to make)."""
        return self._post(Item(key, plan_for("dispute_closure", closure, source)))

    def post_entry(self, entry: JournalEntry, key: str, source: Source = NO_SOURCE) -> Posted:
        """A journal entry as given (revenue journals, manual entries), in any currency."""
        return self._post(Item(key, plan_for("journal_entry", entry, source)))

    def post_many(self, requests: Sequence[Request]) -> list[Posted | DomainError]:
        """Several postings in one call and one transaction, in order (a later one sees what
        an earlier one opened or settled). Each posting is validated alone: a refused one is
        answered with its error and writes nothing; the others still post."""
        return self._post_items([Item(r.key, _planned(r)) for r in requests])

    def _post(self, item: Item) -> Posted:
        (outcome,) = self._post_items([item])
        if isinstance(outcome, DomainError):
            raise outcome
        return outcome

    def _post_items(self, items: Sequence[Item]) -> list[Posted | DomainError]:
        with self._governor.call():
            try:
                with self.engine.begin() as conn:
                    return batch.post_batch(conn, items, self._setup_for(conn), self._clock)
            except IntegrityError:
                # A concurrent call wrote one of these keys first: post them one by one, so
                # that each can find what the other wrote.
                return self._post_each(items)

    def _post_each(self, items: Sequence[Item]) -> list[Posted | DomainError]:
        outcomes: list[Posted | DomainError] = []
        with self.engine.begin() as conn:
            for item in items:
                try:
                    outcomes.append(self._post_nested(conn, item))
                except DomainError as exc:
                    outcomes.append(exc)
        return outcomes

    def _post_nested(self, conn: Connection, item: Item) -> Posted:
        try:
            with conn.begin_nested():
                (outcome,) = batch.post_batch(conn, [item], self._setup_for(conn), self._clock)
        except IntegrityError:
            known = records.entry_by_key(conn, item.key)
            if known is None or not isinstance(item.plan, Plan):
                raise
            outcome = batch.replayed(known, item.key, item.plan.body_hash)
        if isinstance(outcome, DomainError):
            raise outcome
        return outcome

    def preview(self, kind: str, document: Any) -> JournalEntry:
        """The entry the posting rules make for a document, without posting it.

        A summary posting keeps no AR items per document, so the document is rendered
        against the item it would normally meet: a credit memo or payment application
        relieves receivables by its full amount, a refund pays out the customer's credits.
        Lines on a subledger control account (receivables, customer credits) keep only the
        `customer` dimension, tax payable lines only their `jurisdiction`; the others keep
        none, so that a summary can add them up (per customer, per jurisdiction).
        """
        plan = plan_for(kind, document, Source(), assumed_items=True)
        with self.engine.connect() as conn:
            setup = self._setup_for(conn)(plan.entity)
            periods = batch.periods_of(conn, [plan.entity]).get(plan.entity, [])
            rates = batch.Rates(conn, min(plan.days), max(plan.days))
            entry = batch.book(plan, f"preview:{kind}:{plan.document_id}", setup, periods,
                               batch.Subledger(), rates.convert).entry
        chart = setup.chart
        controls = {chart.code_for(Role.ACCOUNTS_RECEIVABLE), chart.code_for(Role.CUSTOMER_CREDITS)}
        kept = {**{code: "customer" for code in controls},
                chart.code_for(Role.TAX_PAYABLE): JURISDICTION}
        return replace(entry, lines=tuple(
            replace(line, dimensions=tuple((k, v) for k, v in line.dimensions
                                           if k == kept.get(line.account)))
            for line in entry.lines))

    def reverse(self, entry_id: str, on: date, key: str, source: Source = NO_SOURCE) -> Posted:
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

    def _setup_for(self, conn: Connection) -> Callable[[str], Setup]:
        """An entity's currency, account map and chart; they never change once created,
        so they are read once per service."""
        def setup(entity: str) -> Setup:
            if entity not in self._setups:
                functional, accounts = records.load_entity(conn, entity)
                self._setups[entity] = Setup(functional, accounts,
                                             records.load_chart(conn, entity))
            return self._setups[entity]

        return setup

    # -- parties ------------------------------------------------------------------------
    def upsert_party(self, customer: CustomerAccount, key: str) -> parties.PartyWritten:
        """The customer master's version of a customer, kept if it is later than the one
        held (`systems.ledger.parties`)."""
        with self._governor.call():
            try:
                with self.engine.begin() as conn:
                    return parties.upsert(conn, customer, key, self._clock())
            except IntegrityError:
                # A concurrent call created the party first: this one now updates it.
                with self.engine.begin() as conn:
                    return parties.upsert(conn, customer, key, self._clock())

    def find_party(self, key: str) -> parties.PartyWritten | None:
        with self._reader.connect() as conn:
            return parties.find(conn, key)

    def party(self, party_id: str) -> parties.Party | None:
        with self._reader.connect() as conn:
            return parties.get(conn, party_id)

    # -- periods ------------------------------------------------------------------------
    def set_period_status(self, entity: str, name: str, to: PeriodStatus, actor: str,
                          reason: str | None = None, *,
                          conn: Connection | None = None) -> AccountingPeriod:
        """Soft-close, close or reopen a period; every change is logged with who and why.
        In `conn`'s transaction when given (a change a second person approved commits with
        the approval), else in one of its own."""
        if conn is not None:
            return self._set_period_status(conn, entity, name, to, actor, reason)
        with self.engine.begin() as own:
            return self._set_period_status(own, entity, name, to, actor, reason)

    def _set_period_status(self, conn: Connection, entity: str, name: str, to: PeriodStatus,
                           actor: str, reason: str | None) -> AccountingPeriod:
        period = next((p for p in records.list_periods(conn, entity) if p.name == name), None)
        if period is None:
            raise PeriodNotFoundError(f"{entity} has no period {name}")
        check_transition(period, to, actor, reason)
        conn.execute(update(t.periods).where(t.periods.c.entity == entity,
                                             t.periods.c.name == name)
                     .values(status=to.value))
        row = {"entity": entity, "period": name, "from_status": period.status.value,
               "to_status": to.value, "actor": actor, "reason": reason, "at": self._clock()}
        conn.execute(insert(t.period_log), row)
        if self._witness is not None:
            self._witness(conn, row)
        return replace(period, status=to)

    def period_status(self, entity: str, on: date) -> PeriodStatus:
        with self._reader.connect() as conn:
            return records.period_for(conn, entity, on).status

    def periods(self, entity: str | None = None) -> list[AccountingPeriod]:
        with self._reader.connect() as conn:
            return records.list_periods(conn, entity)

    def period_log(self, entity: str) -> list[dict[str, Any]]:
        with self._reader.connect() as conn:
            rows = conn.execute(select(t.period_log).where(t.period_log.c.entity == entity)
                                .order_by(t.period_log.c.id)).mappings()
            return [dict(r) for r in rows]

    # -- reading ------------------------------------------------------------------------
    def find(self, key: str) -> Posted | None:
        with self._reader.connect() as conn:
            row = records.entry_by_key(conn, key)
        return None if row is None else Posted(row["id"], row["entity"], row["posting_date"],
                                               replayed=True)

    def trial_balance(self, entity: str, as_of: date) -> list[reports.BalanceRow]:
        with self._reader.connect() as conn:
            return reports.trial_balance(conn, entity, as_of)

    def roll_forward(self, entity: str, start: date,
                     end: date) -> list[reports.RollForwardRow]:
        """Opening balance, debits, credits and closing balance of every account."""
        with self._reader.connect() as conn:
            return reports.roll_forward(conn, entity, start, end)

    def general_ledger(self, entity: str, account: str,
                       until: date | None = None) -> list[dict[str, Any]]:
        with self._reader.connect() as conn:
            records.load_chart(conn, entity).get(account)
            return reports.general_ledger(conn, entity, account, until)

    def aging(self, entity: str, as_of: date) -> list[dict[str, Any]]:
        with self._reader.connect() as conn:
            return reports.aging(conn, entity, as_of)

    def open_items(self, entity: str, as_of: date) -> list[OpenItem]:
        with self._reader.connect() as conn:
            return reports.items_as_of(conn, entity, as_of)

    def customer_credits(self, entity: str, as_of: date, limit: int) -> reports.Credits:
        """Unapplied cash and over-credits open at `as_of`, largest first (at most `limit`),
        with their count and booked total."""
        with self._reader.connect() as conn:
            return reports.credits_as_of(conn, entity, as_of, limit)

    def applications(self, entity: str, as_of: date) -> list[tuple[str, str, Money]]:
        with self._reader.connect() as conn:
            return records.applications(conn, entity, as_of)

    def subledger_check(self, entity: str, as_of: date) -> dict[str, dict[str, str]]:
        with self._reader.connect() as conn:
            return reports.subledger_check(conn, entity, as_of)

    def entities(self) -> list[tuple[str, str]]:
        with self._reader.connect() as conn:
            return [(r.id, r.functional_currency) for r in conn.execute(
                select(t.entities.c.id, t.entities.c.functional_currency)
                .order_by(t.entities.c.id))]

    def export_beancount(self, *, can_read_pii: bool = False) -> str:
        """The books in beancount's format; a journal entry's memo (free text: a credit
        memo's carries its reason) only for a reader with `pii:read`."""
        with self._reader.connect() as conn:
            return beancount.export(
                ((entity, currency, records.load_chart(conn, entity),
                  records.entries(conn, entity=entity))
                 for entity, currency in self.entities()), memos=can_read_pii)

    def entries(self, entity: str | None = None) -> list[JournalEntry]:
        with self._reader.connect() as conn:
            return records.entries(conn, entity=entity)

    def entry(self, entry_id: str) -> JournalEntry:
        with self._reader.connect() as conn:
            found = records.entries(conn, entry_ids=[entry_id])
        if not found:
            raise LedgerError(f"no journal entry {entry_id}")
        return found[0]
