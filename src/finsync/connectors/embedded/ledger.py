"""The embedded ledger behind the ledger port.

The service already posts idempotently by key; this adapter only maps documents to calls,
entries to receipts, and the ledger's errors to what the hub can act on.

Its postings are calls across the ERP's port, in process: each goes to the call log
(`connectors.calls`) as a `port` call, like a remote ERP's requests, so the evidence of a
correlation does not depend on which ERP plays the role.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import date
from typing import TypeVar

from sqlalchemy.exc import OperationalError

from finsync.connectors.calls import (
    NO_RECORDER,
    CallRecorder,
    Channel,
    Exchange,
    Subject,
    recorded,
)
from finsync.connectors.embedded.ledger_books import LedgerSnapshot, ledger_books
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
    nothing_posted,
)
from finsync.domain.dispute import DisputeClosure, DisputeFunds
from finsync.domain.errors import (
    ConnectorError,
    DomainError,
    ExceptionClass,
    FinsyncError,
    PermanentError,
    TransientError,
    UnbalancedEntryError,
)
from finsync.domain.events import AnyEvent, CustomerUpserted, DisputeClosed
from finsync.domain.invoice import CreditMemo, Invoice
from finsync.domain.journal import JournalEntry, PeriodStatus
from finsync.domain.party import CustomerAccount
from finsync.domain.payment import Payment, Refund
from finsync.systems.ledger import errors as ledger_errors
from finsync.systems.ledger.parties import PartyWritten
from finsync.systems.ledger.service import LedgerService, Posted, Request, Source

T = TypeVar("T")

# What a person does about each refusal decides its class.
_CLASSES: tuple[tuple[type[DomainError], ExceptionClass], ...] = (
    (ledger_errors.ClosedPeriodError, ExceptionClass.CLOSED_PERIOD),
    (ledger_errors.PeriodNotFoundError, ExceptionClass.CLOSED_PERIOD),
    (ledger_errors.IdempotencyMismatchError, ExceptionClass.DUPLICATE_EVENT),
    (ledger_errors.DuplicateDocumentError, ExceptionClass.DUPLICATE_EVENT),
    (UnbalancedEntryError, ExceptionClass.MAPPING_ERROR),
    (DomainError, ExceptionClass.MASTER_DATA_MISMATCH),
)


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except ledger_errors.LedgerBusyError as exc:
        raise TransientError(str(exc), retry_after_s=exc.retry_after_s) from exc
    except ledger_errors.UnknownDocumentError as exc:
        # Documents of different aggregates are not ordered: the invoice may still come.
        waiting = TransientError(str(exc), exception_class=ExceptionClass.SEQUENCING_ERROR)
        raise waiting from exc
    except OperationalError as exc:
        raise TransientError(f"ledger database unavailable: {exc.orig}") from exc
    except DomainError as exc:
        klass = next(k for error, k in _CLASSES if isinstance(exc, error))
        raise PermanentError(f"{exc.code}: {exc}", exception_class=klass) from exc


def _source(ctx: DeliveryContext, canonical_id: str) -> Source:
    return Source(ctx.correlation_id, (("event", ctx.event_id), ("document", canonical_id)),
                  posting_date=ctx.posting_date)


def _request(event: LedgerEvent, ctx: DeliveryContext) -> Request:
    """The ledger's request for a posting: its document kind is the event's aggregate type."""
    return Request(event.aggregate_type, event.document, ctx.delivery_key,
                   _source(ctx, event.document.id))


def _nothing(event: LedgerEvent) -> bool:
    """An event that moves nothing in the books (answered without an entry)."""
    return isinstance(event, DisputeClosed) and event.closure.unrecovered.is_zero


def _not_posted(event: AnyEvent) -> PermanentError:
    """An event the ledger does not post (the hub's types are no proof at run time)."""
    return PermanentError(f"the ledger posts no {event.name} events",
                          exception_class=ExceptionClass.MAPPING_ERROR)


def _party_receipt(written: PartyWritten) -> Receipt:
    """The ledger keeps a party under the customer's canonical id: that is its id here."""
    return Receipt(written.party_id,
                   (Reference(written.party_id, CustomerUpserted.aggregate_type,
                              written.party_id),),
                   {"version": str(written.version), "outcome": written.outcome.value})


def _one_error(error: DomainError) -> ConnectorError:
    """A posting's own refusal inside a batch, classed as `_translated` would."""
    try:
        with _translated():
            raise error
    except ConnectorError as exc:
        return exc
    raise AssertionError("unreachable")  # pragma: no cover


class EmbeddedLedger:
    def __init__(self, system: str, service: LedgerService, max_batch: int = 100, *,
                 recorder: CallRecorder = NO_RECORDER) -> None:
        self.system, self._service, self.max_batch = system, service, max_batch
        self._recorder = recorder

    def _receipt(self, kind: str, canonical_id: str, posted: Posted) -> Receipt:
        return Receipt(posted.entry_id, (Reference(canonical_id, kind, posted.entry_id),),
                       {"replayed": str(posted.replayed).lower()})

    def _call(self, method: str, kind: str, canonical_id: str, ctx: DeliveryContext,
              post: Callable[[], Posted]) -> Receipt:
        with self._recorded(method, (ctx,)) as exchange:
            exchange.request({"kind": kind, "document": canonical_id, "key": ctx.delivery_key})
            with _translated():
                receipt = self._receipt(kind, canonical_id, post())
            exchange.response({"external_id": receipt.external_id, **receipt.detail})
            return receipt

    def _recorded(self, method: str,
                  contexts: Sequence[DeliveryContext]) -> AbstractContextManager[Exchange]:
        return recorded(self._recorder, self.system, Channel.PORT, method, "LedgerPort",
                        [Subject(c.correlation_id, c.delivery_key) for c in contexts])

    def post_invoice(self, invoice: Invoice, ctx: DeliveryContext) -> Receipt:
        return self._call("post_invoice", "invoice", invoice.id, ctx,
                          lambda: self._service.post_invoice(invoice, ctx.delivery_key,
                                                             _source(ctx, invoice.id)))

    def post_credit_memo(self, memo: CreditMemo, ctx: DeliveryContext) -> Receipt:
        return self._call("post_credit_memo", "credit_memo", memo.id, ctx,
                          lambda: self._service.post_credit_memo(memo, ctx.delivery_key,
                                                                 _source(ctx, memo.id)))

    def post_payment(self, payment: Payment, ctx: DeliveryContext) -> Receipt:
        return self._call("post_payment", "payment", payment.id, ctx,
                          lambda: self._service.post_payment(payment, ctx.delivery_key,
                                                             _source(ctx, payment.id)))

    def post_refund(self, refund: Refund, ctx: DeliveryContext) -> Receipt:
        return self._call("post_refund", "refund", refund.id, ctx,
                          lambda: self._service.post_refund(refund, ctx.delivery_key,
                                                            _source(ctx, refund.id)))

    def post_dispute_funds(self, funds: DisputeFunds, ctx: DeliveryContext) -> Receipt:
        return self._call("post_dispute_funds", "dispute_funds", funds.id, ctx,
                          lambda: self._service.post_dispute_funds(funds, ctx.delivery_key,
                                                                   _source(ctx, funds.id)))

    def post_dispute_closure(self, closure: DisputeClosure, ctx: DeliveryContext) -> Receipt:
        if closure.unrecovered.is_zero:
            return nothing_posted(closure.id)
        return self._call("post_dispute_closure", "dispute_closure", closure.id, ctx,
                          lambda: self._service.post_dispute_closure(
                              closure, ctx.delivery_key, _source(ctx, closure.id)))

    def post_journal_entry(self, entry: JournalEntry, ctx: DeliveryContext) -> Receipt:
        return self._call("post_journal_entry", "journal_entry", entry.id, ctx,
                          lambda: self._service.post_entry(entry, ctx.delivery_key,
                                                           _source(ctx, entry.id)))

    def post_batch(self, postings: Sequence[Posting]) -> Sequence[Receipt | FinsyncError]:
        """All postings in one ledger call and transaction; each keeps its own outcome."""
        if len(postings) > self.max_batch:
            raise PermanentError(f"{len(postings)} postings in one call; the ledger takes "
                                 f"{self.max_batch}", exception_class=ExceptionClass.INTERNAL_ERROR)
        requests = [_request(p.event, p.ctx) for p in postings
                    if isinstance(p.event, LEDGER_EVENTS) and not _nothing(p.event)]
        with self._recorded("post_batch", [p.ctx for p in postings]) as exchange:
            exchange.request([{"kind": r.kind, "key": r.key} for r in requests])
            with _translated():
                found = self._service.post_many(requests)
            exchange.response({"posted": sum(isinstance(o, Posted) for o in found),
                               "refused": sum(not isinstance(o, Posted) for o in found)})
        outcomes = iter(found)
        answers: list[Receipt | FinsyncError] = []
        for posting in postings:
            event = posting.event
            if not isinstance(event, LEDGER_EVENTS):
                answers.append(_not_posted(event))
                continue
            if _nothing(event):
                answers.append(nothing_posted(event.document.id))
                continue
            outcome = next(outcomes)
            if isinstance(outcome, Posted):
                answers.append(self._receipt(event.aggregate_type, event.document.id, outcome))
            else:
                answers.append(_one_error(outcome))
        return answers

    def upsert_party(self, customer: CustomerAccount, ctx: DeliveryContext) -> Receipt:
        """The ledger's party of a customer, as the customer master's version says (an
        older version than the one held changes nothing; `systems.ledger.parties`)."""
        with self._recorded("upsert_party", (ctx,)) as exchange:
            exchange.request({"customer": customer.id, "version": customer.version,
                              "key": ctx.delivery_key})
            with _translated():
                written = self._service.upsert_party(customer, ctx.delivery_key)
            receipt = _party_receipt(written)
            exchange.response({"external_id": receipt.external_id, **receipt.detail})
            return receipt

    def preview_journal(self, event: LedgerEvent) -> JournalEntry:
        if not isinstance(event, LEDGER_EVENTS):
            raise _not_posted(event)
        with _translated():
            return self._service.preview(event.aggregate_type, event.document)

    def find_receipt(self, key: str) -> Receipt | None:
        with _translated():
            posted = self._service.find(key)
            if posted is not None:
                return Receipt(posted.entry_id)
            written = self._service.find_party(key)
        return None if written is None else _party_receipt(written)

    def period_status(self, legal_entity: str, on: date) -> PeriodStatus:
        return self._read(lambda: self._service.period_status(legal_entity, on))

    def close_period(self, legal_entity: str, period: str, actor: str) -> None:
        self._read(lambda: self._service.set_period_status(legal_entity, period,
                                                           PeriodStatus.CLOSED, actor))

    def trial_balance(self, legal_entity: str, as_of: date) -> Sequence[AccountBalance]:
        rows = self._read(lambda: self._service.trial_balance(legal_entity, as_of))
        return [AccountBalance(r.account, r.name, r.type, r.balance) for r in rows]

    def receivables(self, legal_entity: str, as_of: date) -> Sequence[Receivable]:
        items = self._read(lambda: self._service.open_items(legal_entity, as_of))
        return [Receivable(i.customer_id, i.document_id,
                           -i.open if i.kind.value == "credit" else i.open,
                           -i.booked_open if i.kind.value == "credit" else i.booked_open)
                for i in items]

    def resolve_account(self, code: str) -> str:
        return code

    def applications(self, legal_entity: str, as_of: date) -> Sequence[Application]:
        rows = self._read(lambda: self._service.applications(legal_entity, as_of))
        return [Application(by, document, amount) for by, document, amount in rows]

    def books(self) -> AbstractContextManager[LedgerSnapshot]:
        """Reconciliation's set-based reads, in one snapshot (`ledger_books`)."""
        return ledger_books(self._service.engine)

    @staticmethod
    def _read(call: Callable[[], T]) -> T:
        with _translated():
            return call()
