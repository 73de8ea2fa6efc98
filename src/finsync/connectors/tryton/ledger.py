"""Tryton behind the ledger port: documents become posted `account.move`s; and behind the
party port: customers become parties (`tryton.parties`).

Rules:
- Every move carries finsync's idempotency key and the document's body hash in its
  description (`finsync:<key>:<hash>`). Before writing, the key is searched: a posted move
  with the same hash is the first receipt; a draft one (the post was lost) is posted now;
  another hash is a duplicate event. This read-back is what makes a retry after a lost
  answer post once.
- A move is created, then posted (two calls; Tryton posts nothing in `create`). If the post
  is refused the draft is deleted, so a refusal leaves nothing behind.
- The move's period is the one of the document's date, always sent (Tryton's default is
  today's). A closed period is Tryton's refusal, classified `closed_period`.
- A batch creates its new moves in one `create` and posts them in one `post` call. If one
  of those calls is refused, each posting of the batch goes again alone, to isolate the one
  at fault; if the outcome is unknown (server gone) every posting of the batch gets the
  transient error and its retry reads back.
- Deliveries of one key are not run concurrently (the hub's outbox claims a delivery once),
  so the search-then-create window needs no lock in Tryton.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from typing import Any

from finsync.connectors.ports import (
    LEDGER_EVENTS,
    AccountBalance,
    Application,
    DeliveryContext,
    LedgerEvent,
    Posting,
    Receipt,
    Receivable,
    Reference,
    TaxAmount,
    nothing_posted,
)
from finsync.connectors.tryton.accounts import AccountMap, Role
from finsync.connectors.tryton.books import Company
from finsync.connectors.tryton.moves import Document, Mapper, Move, Subledger, body_hash
from finsync.connectors.tryton.parties import PartyBook
from finsync.connectors.tryton.rpc import TrytonClient
from finsync.connectors.tryton.tax import tax_payable_rows
from finsync.domain.dispute import DisputeClosure, DisputeFunds
from finsync.domain.errors import (
    ConnectorError,
    DomainError,
    ExceptionClass,
    FinsyncError,
    PermanentError,
    TransientError,
)
from finsync.domain.events import (
    AnyEvent,
    CreditMemoIssued,
    DisputeClosed,
    DisputeFundsReinstated,
    DisputeFundsWithdrawn,
    InvoiceIssued,
    JournalEntrySummarised,
    PaymentApplied,
    RefundIssued,
)
from finsync.domain.invoice import CreditMemo, Invoice
from finsync.domain.journal import JournalEntry, JournalLine, PeriodStatus, Side
from finsync.domain.money import Money
from finsync.domain.party import CustomerAccount
from finsync.domain.payment import Payment, Refund

PREFIX = "finsync:"


@dataclass(frozen=True, slots=True)
class Entity:
    """A legal entity's Tryton company (by its party name) and where it books."""

    company: str
    accounts: AccountMap = field(default_factory=AccountMap)


@dataclass(frozen=True, slots=True)
class Found:
    """A move already holding a key."""

    move_id: int
    state: str
    body_hash: str
    number: str


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _tag(key: str, body_hash: str) -> str:
    return f"{PREFIX}{key}:{body_hash}"


def _parse(description: str) -> tuple[str, str]:
    key, _, body_hash = description[len(PREFIX):].rpartition(":")
    return key, body_hash


class TrytonLedger:
    def __init__(self, system: str, connect: Callable[[], TrytonClient],
                 entities: Mapping[str, Entity], max_batch: int = 25) -> None:
        self.system, self.max_batch = system, max_batch
        self._connect, self._entities = connect, dict(entities)
        self._local = threading.local()
        self._companies: dict[str, Company] = {}
        self._lock = threading.Lock()
        self._clients: list[TrytonClient] = []
        self._clients_lock = threading.Lock()  # apart: `client` is read under `_lock`
        self._party_book = PartyBook()

    # -- plumbing --------------------------------------------------------------------

    @property
    def client(self) -> TrytonClient:
        """One client (session, connection) per thread."""
        client: TrytonClient | None = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._connect()
            with self._clients_lock:
                self._clients.append(client)
        return client

    def close(self) -> None:
        """Close every thread's connection: a worker thread that ended cannot close its own."""
        with self._clients_lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()

    def _entity(self, legal_entity: str) -> Entity:
        if legal_entity not in self._entities:
            raise PermanentError(f"no Tryton company is configured for {legal_entity!r}",
                                 exception_class=ExceptionClass.MASTER_DATA_MISMATCH)
        return self._entities[legal_entity]

    def _company(self, legal_entity: str) -> Company:
        with self._lock:
            if legal_entity not in self._companies:
                company = Company.load(self.client, self._entity(legal_entity).company)
                self._companies[legal_entity] = company
            return self._companies[legal_entity]

    # -- the port: posting -----------------------------------------------------------

    def post_invoice(self, invoice: Invoice, ctx: DeliveryContext) -> Receipt:
        return self._post_one(Posting(InvoiceIssued(invoice), ctx))

    def post_credit_memo(self, memo: CreditMemo, ctx: DeliveryContext) -> Receipt:
        return self._post_one(Posting(CreditMemoIssued(memo), ctx))

    def post_payment(self, payment: Payment, ctx: DeliveryContext) -> Receipt:
        return self._post_one(Posting(PaymentApplied(payment), ctx))

    def post_refund(self, refund: Refund, ctx: DeliveryContext) -> Receipt:
        return self._post_one(Posting(RefundIssued(refund), ctx))

    def post_dispute_funds(self, funds: DisputeFunds, ctx: DeliveryContext) -> Receipt:
        event = DisputeFundsWithdrawn(funds) if funds.withdrawn else DisputeFundsReinstated(funds)
        return self._post_one(Posting(event, ctx))

    def post_dispute_closure(self, closure: DisputeClosure, ctx: DeliveryContext) -> Receipt:
        return self._post_one(Posting(DisputeClosed(closure), ctx))

    def post_journal_entry(self, entry: JournalEntry, ctx: DeliveryContext) -> Receipt:
        # Any journal entry posts alike; the move's kind is the same for every journal event.
        return self._post_one(Posting(JournalEntrySummarised(entry), ctx))

    def _post_one(self, posting: Posting) -> Receipt:
        if _nothing(posting.event):
            return nothing_posted(posting.event.document.id)
        (outcome,) = self._post_group([posting])
        if isinstance(outcome, Receipt):
            return outcome
        raise outcome

    def post_batch(self, postings: Sequence[Posting]) -> Sequence[Receipt | FinsyncError]:
        outcomes: list[Receipt | FinsyncError] = []
        for start in range(0, len(postings), self.max_batch):
            chunk = postings[start:start + self.max_batch]
            by_entity: dict[str, list[int]] = {}
            results: dict[int, Receipt | FinsyncError] = {}
            for i, posting in enumerate(chunk):
                if _nothing(posting.event):
                    results[i] = nothing_posted(posting.event.document.id)
                elif isinstance(posting.event, LEDGER_EVENTS):
                    by_entity.setdefault(posting.event.document.legal_entity, []).append(i)
                else:
                    results[i] = _not_posted(posting.event)
            for indexes in by_entity.values():
                group = self._post_group([chunk[i] for i in indexes])
                results.update(zip(indexes, group, strict=True))
            outcomes += [results[i] for i in range(len(chunk))]
        return outcomes

    def _post_group(self, postings: Sequence[Posting]) -> list[Receipt | FinsyncError]:
        """Postings of one legal entity: read back, map, create all, post all."""
        try:
            company = self._company(postings[0].event.document.legal_entity)
            found = self._search(p.ctx.delivery_key for p in postings)
            mapper = self._mapper(company, postings)
        except FinsyncError as exc:
            return [exc] * len(postings)
        outcomes: list[Receipt | FinsyncError | None] = [None] * len(postings)
        new: list[tuple[int, Move]] = []
        drafts: list[tuple[int, int]] = []
        for i, posting in enumerate(postings):
            event, key = posting.event, posting.ctx.delivery_key
            known = found.get(key)
            if known is None:
                try:
                    move = mapper.move(event)
                    if posting.ctx.posting_date is not None:  # an approved re-route
                        move = replace(move, date=posting.ctx.posting_date)
                    new.append((i, move))
                except (DomainError, ConnectorError) as exc:
                    outcomes[i] = exc
            elif known.body_hash != body_hash(event.aggregate_type, event.document):
                outcomes[i] = PermanentError(
                    f"key {key} already posted move {known.move_id} with another "
                    "body", exception_class=ExceptionClass.DUPLICATE_EVENT)
            elif known.state == "posted":
                outcomes[i] = self._receipt(posting, known.move_id, known.number, True)
            else:
                drafts.append((i, known.move_id))
        self._write(company, postings, new, drafts, outcomes)
        return [o if o is not None else TransientError("not posted") for o in outcomes]

    def _write(self, company: Company, postings: Sequence[Posting], new: list[tuple[int, Move]],
               drafts: list[tuple[int, int]], outcomes: list[Receipt | FinsyncError | None],
               ) -> None:
        if not new and not drafts:
            return
        try:
            values = [self._values(company, postings[i].ctx.delivery_key, move)
                      for i, move in new]
            created: list[int] = self.client.model(
                "account.move", "create", values, context=company.context) if values else []
            ids = [*created, *(move_id for _, move_id in drafts)]
            self._post_moves(company, ids)
            numbers = self._numbers(company, ids)  # posted, but unknown until read back
        except TransientError as exc:
            for i, _ in (*new, *drafts):
                outcomes[i] = exc  # unknown outcome: the retry reads back
            return
        except PermanentError as exc:
            if len(new) + len(drafts) == 1:
                i = (new or drafts)[0][0]
                outcomes[i] = exc
                return
            for i, _ in (*new, *drafts):  # isolate the one at fault
                outcomes[i] = self._isolated(postings[i])
            return
        for (i, _move), move_id in zip(new, created, strict=True):
            outcomes[i] = self._receipt(postings[i], move_id, numbers[move_id], False)
        for i, move_id in drafts:
            outcomes[i] = self._receipt(postings[i], move_id, numbers[move_id], True)

    def _isolated(self, posting: Posting) -> Receipt | FinsyncError:
        try:
            return self._post_one(posting)
        except FinsyncError as exc:
            return exc

    def _post_moves(self, company: Company, ids: list[int]) -> None:
        if not ids:
            return
        try:
            self.client.model("account.move", "post", ids, context=company.context)
        except PermanentError:
            if len(ids) == 1:  # refused: leave no draft behind
                self.client.model("account.move", "delete", ids, context=company.context)
            raise

    def _values(self, company: Company, key: str, move: Move) -> dict[str, Any]:
        period = company.period(self.client, move.date)
        if period is None:
            raise PermanentError(f"Tryton company {company.name!r} has no period for "
                                 f"{move.date}", exception_class=ExceptionClass.CLOSED_PERIOD)
        accounts = self._entity(move.legal_entity).accounts
        subledger = set(accounts.subledger)
        lines = []
        for line in move.lines:
            values: dict[str, Any] = {
                "account": company.account(self.client, line.account).id,
                "debit": line.debit, "credit": line.credit,
                "description": line.tag or line.description or move.description}
            if line.customer_id and line.account in subledger:
                values["party"] = company.party(self.client, line.customer_id)
            lines.append(values)
        return {"company": company.id, "period": period.id, "date": move.date,
                "journal": company.journal(self.client, accounts.journals[move.journal]),
                "description": _tag(key, move.body_hash), "lines": [("create", lines)]}

    def _numbers(self, company: Company, ids: list[int]) -> dict[int, str]:
        rows = self.client.model("account.move", "read", ids, ["number"],
                                 context=company.context)
        return {r["id"]: str(r["number"] or r["id"]) for r in rows}

    @staticmethod
    def _receipt(posting: Posting, move_id: int, number: str, replayed: bool) -> Receipt:
        external, event = str(move_id), posting.event
        return Receipt(external, (Reference(event.document.id, event.aggregate_type, external),),
                       {"number": number, "replayed": str(replayed).lower()})

    def _mapper(self, company: Company, postings: Sequence[Posting]) -> Mapper:
        accounts = self._entity(postings[0].event.document.legal_entity).accounts
        customers = sorted({p.event.document.customer_id for p in postings
                            if isinstance(p.event.document, Invoice | CreditMemo | Payment
                                          | Refund)})
        ledger = Subledger(accounts.subledger)
        if customers:
            for line in self._subledger_lines(company, accounts, customers, as_of=None):
                ledger.add(*line)
        return Mapper(accounts, company.currency, ledger)

    def _subledger_lines(self, company: Company, accounts: AccountMap, customers: list[str],
                         as_of: date | None) -> Iterable[tuple[str, str, str, Decimal, date]]:
        """Posted lines of the receivable and customer-credit accounts (of `customers`, or
        of everyone when empty) as (code, customer, tag, debit - credit, date)."""
        domain: list[Any] = [("move.state", "=", "posted"), ("move.company", "=", company.id),
                             ("account.code", "in", list(accounts.subledger))]
        if customers:
            company.known_parties(self.client, customers)
            parties = [company.parties[c] for c in customers if c in company.parties]
            if not parties:
                return []
            domain.append(("party", "in", parties))
        if as_of is not None:
            domain.append(("date", "<=", as_of))
        rows = self.client.model("account.move.line", "search_read", domain, 0, None, None,
                                 ["account.code", "party", "description", "debit", "credit",
                                  "date"], context=company.context)
        return [(r["account."]["code"], company.customer(self.client, r["party"]),
                 r["description"] or "", r["debit"] - r["credit"], r["date"])
                for r in rows if r["party"] is not None]

    def _search(self, keys: Iterable[str]) -> dict[str, Found]:
        wanted = list(dict.fromkeys(keys))
        clauses: list[Any] = [("description", "like", f"{PREFIX}{_escape(k)}:%")
                              for k in wanted]
        domain = clauses if len(clauses) == 1 else ["OR", *clauses]
        rows = self.client.model("account.move", "search_read", domain, 0, None, [("id", "ASC")],
                                 ["description", "state", "number"])
        found: dict[str, Found] = {}
        for row in rows:
            key, body_hash = _parse(row["description"])
            if key in wanted and key not in found:  # the first move of a key is its answer
                found[key] = Found(row["id"], row["state"], body_hash,
                                   str(row["number"] or row["id"]))
        return found

    # -- the port: the customer master -----------------------------------------------

    def upsert_party(self, customer: CustomerAccount, ctx: DeliveryContext) -> Receipt:
        """The customer's party made what the master says (`tryton.parties`), through the
        company of its legal entity, whose party cache learns it."""
        return self._party_book.upsert(self.client, self._company(customer.legal_entity),
                                       customer)

    # -- the port: reading -----------------------------------------------------------

    def find_receipt(self, key: str) -> Receipt | None:
        found = self._search([key]).get(key)
        if found is None or found.state != "posted":
            return None
        return Receipt(str(found.move_id), (), {"number": found.number})

    def period_status(self, legal_entity: str, on: date) -> PeriodStatus:
        company = self._company(legal_entity)
        period = company.period(self.client, on)
        if period is None:
            return PeriodStatus.CLOSED  # nothing can post there
        (row,) = self.client.model("account.period", "read", [period.id], ["state"],
                                   context=company.context)
        return PeriodStatus.OPEN if row["state"] == "open" else PeriodStatus.CLOSED

    def preview_journal(self, event: LedgerEvent) -> JournalEntry:
        """The move Tryton's mapping makes for a document, as a journal entry in Tryton's
        codes, without posting it (summary posting adds these up). As the embedded ledger's
        preview does, the document meets the item it normally meets: its invoice open for
        what it applies or credits, the customer's credit for what a refund pays out.
        Subledger lines keep only the customer."""
        if not isinstance(event, LEDGER_EVENTS):
            raise _not_posted(event)
        legal_entity = event.document.legal_entity
        entity = self._entity(legal_entity)
        currency = self._company(legal_entity).currency
        ledger = Subledger(entity.accounts.subledger)
        for account, customer, tag, amount in _assumed_items(event.document, entity.accounts):
            ledger.add(account, customer, tag, amount, date.min)
        move = Mapper(entity.accounts, currency, ledger).move(event)
        return JournalEntry(f"preview:{move.kind}:{move.document_id}", move.legal_entity,
                            move.date, move.description, tuple(
                                JournalLine(line.account,
                                            Side.DEBIT if line.debit else Side.CREDIT,
                                            Money(line.debit or line.credit, currency),
                                            (("customer", line.customer_id),)
                                            if line.customer_id else ())
                                for line in move.lines))

    def close_period(self, legal_entity: str, period: str, actor: str) -> None:
        """Close Tryton's period of that month (Tryton refuses while drafts remain in it)."""
        company = self._company(legal_entity)
        year, month = (int(part) for part in period.split("-"))
        found = company.period(self.client, date(year, month, 1))
        if found is None:
            raise PermanentError(f"Tryton company {company.name!r} has no period {period}",
                                 exception_class=ExceptionClass.CLOSED_PERIOD)
        if self.period_status(legal_entity, found.start) is PeriodStatus.OPEN:
            self.client.model("account.period", "close", [found.id], context=company.context)

    def resolve_account(self, code: str) -> str:
        """finsync's chart codes (a revenue journal's "2400") are aliases of Tryton's."""
        return next(iter(self._entities.values())).accounts.resolve(code)

    def applications(self, legal_entity: str, as_of: date) -> Sequence[Application]:
        """Receivable lines a payment move credits, per invoice they settle (their tag)."""
        company = self._company(legal_entity)
        accounts = self._entity(legal_entity).accounts
        base: list[Any] = [("move.state", "=", "posted"), ("move.company", "=", company.id),
                           ("date", "<=", as_of)]
        settling = self.client.model(
            "account.move.line", "search_read",
            [*base, ("account.code", "=", accounts.code(Role.RECEIVABLE)), ("credit", ">", 0)],
            0, None, None, ["move", "description", "credit"], context=company.context)
        moves = sorted({r["move"] for r in settling})
        cash = self.client.model(
            "account.move.line", "search_read",
            [*base, ("move", "in", moves), ("description", "like", "Payment %")],
            0, None, None, ["move", "description"], context=company.context) if moves else []
        payment = {r["move"]: r["description"].split(" ", 2)[1] for r in cash}
        return [Application(payment[r["move"]], r["description"],
                            Money(r["credit"], company.currency))
                for r in settling if r["move"] in payment]

    def tax_payable_rows(self, legal_entity: str, as_of: date) -> Sequence[TaxAmount]:
        """Each posted tax line's document, jurisdiction and net credit (`tryton.tax`)."""
        company = self._company(legal_entity)
        code = self._entity(legal_entity).accounts.code(Role.TAX_PAYABLE)
        return tax_payable_rows(self.client, company, code, as_of)

    def trial_balance(self, legal_entity: str, as_of: date) -> Sequence[AccountBalance]:
        company = self._company(legal_entity)
        rows = self.client.model(
            "account.account", "search_read",
            # leaves only: a parent's balance is its children's
            [("company", "=", company.id), ("type", "!=", None), ("childs", "=", None)],
            0, None, [("code", "ASC")],
            ["code", "balance"], context={**company.context, "posted": True, "date": as_of})
        result = []
        for row in rows:
            if not row["balance"]:
                continue
            account = company.account(self.client, row["code"])
            result.append(AccountBalance(account.code, account.name, account.type,
                                         Money(row["balance"], company.currency)))
        return result

    def receivables(self, legal_entity: str, as_of: date) -> Sequence[Receivable]:
        company = self._company(legal_entity)
        accounts = self._entity(legal_entity).accounts
        ledger = Subledger(accounts.subledger)
        for line in self._subledger_lines(company, accounts, [], as_of):
            ledger.add(*line)
        return [Receivable(item.customer_id, item.tag, Money(item.balance, company.currency),
                           Money(item.balance, company.currency))
                for item in ledger.items()]


def _nothing(event: AnyEvent) -> bool:
    """An event that moves nothing in the books: answered without a move."""
    return isinstance(event, DisputeClosed) and event.closure.unrecovered.is_zero


def _not_posted(event: AnyEvent) -> PermanentError:
    return PermanentError(f"the Tryton ledger does not post {event.name} events",
                          exception_class=ExceptionClass.MAPPING_ERROR)


def _assumed_items(document: Document, accounts: AccountMap,
                   ) -> list[tuple[str, str, str, Decimal]]:
    """(account, customer, tag, debit-positive balance) a previewed document is assumed to
    meet."""
    receivable, credits = accounts.subledger
    if isinstance(document, Invoice):  # paid partly out of a credit the customer held
        applied = document.customer_credit_applied
        return [] if applied is None else [(credits, document.customer_id,
                                            f"{document.id}:credit", -applied.amount)]
    if isinstance(document, CreditMemo):
        return [(receivable, document.customer_id, document.invoice_id,
                 document.total.amount)]
    if isinstance(document, Payment):
        return [(receivable, document.customer_id, a.invoice_id, a.amount.amount)
                for a in document.applications]
    if isinstance(document, Refund):
        return [(credits, document.customer_id, f"{document.id}:credit",
                 -document.amount.amount)]
    return []
