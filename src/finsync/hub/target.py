"""Targets: how a canonical event becomes a call on a role's port.

Each target declares its routes, one per event class it takes: the port method the event's
document goes to and the milestone a success records (invoice posted, payment applied,
revenue schedule created…).

A subscription platform takes the commercial layer's orders (`billing_target`): an approved
CPQ version is translated by the order desk (`hub.order_desk`) and applied, and the
customer master's customers are created or updated there.

A tax engine takes the final documents (`tax_target`): an invoice issued is committed, a
credit memo commits its reversal (or voids the invoice's transaction). Its failures are
`tax_failure` exceptions: the engine's own errors are translated here (unavailable:
retried; refused: failed), and a connector's `target_unavailable` is classed `tax_failure`
too, so that finance sees a commit retried as the tax failure it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar, runtime_checkable

from finsync.connectors.ports import (
    AnsweringPort,
    DeliveryContext,
    LedgerPort,
    OrderNotAppliedError,
    PartyPort,
    Receipt,
    RevenuePort,
    Sent,
    SubscriptionPlatformPort,
    TaxPort,
)
from finsync.domain.commercial import CommercialContract, SubscriptionOrder
from finsync.domain.contract import ContractAmendment, SubscriptionContract
from finsync.domain.dispute import Dispute, DisputeClosure, DisputeFunds
from finsync.domain.errors import ExceptionClass, PermanentError, TransientError
from finsync.domain.events import (
    AnyEvent,
    CanonicalEvent,
    CommercialContractApproved,
    ContractAmended,
    ContractCancelled,
    ContractCreated,
    ContractRenewed,
    CreditMemoIssued,
    CustomerUpserted,
    DisputeClosed,
    DisputeFundsReinstated,
    DisputeFundsWithdrawn,
    EventType,
    Identified,
    InvoiceIssued,
    JournalEntrySummarised,
    PaymentApplied,
    RefundIssued,
    RevenueJournalRecorded,
    UsageRated,
)
from finsync.domain.invoice import CreditMemo, HeldInvoice, Invoice
from finsync.domain.journal import JournalEntry, Side
from finsync.domain.money import Money, per_currency
from finsync.domain.payment import Payment, Refund
from finsync.domain.tax import TaxRefusedError, TaxUnavailableError
from finsync.hub.milestone import Milestone

D = TypeVar("D", bound=Identified)


class Target(Protocol):
    system: str

    def handles(self, event_type: EventType) -> bool: ...
    def deliver(self, event: AnyEvent, ctx: DeliveryContext) -> Receipt: ...
    def milestone(self, event_type: EventType) -> Milestone | None: ...
    def find_receipt(self, delivery_key: str) -> Receipt | None: ...


@runtime_checkable
class AnsweringTarget(Target, Protocol):
    """A target that tells, for many deliveries in one read, which it answered already
    (`connectors.ports.AnsweringPort`); by delivery key."""

    def answered(self, sent: Sequence[tuple[AnyEvent, DeliveryContext]]
                 ) -> Mapping[str, Receipt]: ...


Answer = Callable[[Sequence[Sent]], Mapping[str, Receipt]]


@dataclass(frozen=True, slots=True)
class Route:
    event_class: type[AnyEvent]
    call: Callable[[AnyEvent, DeliveryContext], Receipt]
    milestone: Milestone | None


def route(event_class: type[CanonicalEvent[D]], call: Callable[[D, DeliveryContext], Receipt],
          milestone: Milestone | None) -> Route:
    """Send the document of `event_class` events to `call`."""
    def deliver(event: AnyEvent, ctx: DeliveryContext) -> Receipt:
        if not isinstance(event, event_class):
            raise TypeError(f"a {event_class.__name__} route got {type(event).__name__}")
        return call(event.document, ctx)
    return Route(event_class, deliver, milestone)


class PortTarget:
    def __init__(self, system: str, routes: tuple[Route, ...],
                 find: Callable[[str], Receipt | None], answer: Answer | None = None) -> None:
        self.system, self._find, self._answer = system, find, answer
        self._routes: Mapping[EventType, Route] = {r.event_class.name: r for r in routes}

    def handles(self, event_type: EventType) -> bool:
        return event_type in self._routes

    def deliver(self, event: AnyEvent, ctx: DeliveryContext) -> Receipt:
        return self._routes[event.name].call(event, ctx)

    def milestone(self, event_type: EventType) -> Milestone | None:
        found = self._routes.get(event_type)
        return None if found is None else found.milestone

    def find_receipt(self, delivery_key: str) -> Receipt | None:
        return self._find(delivery_key)

    def answered(self, sent: Sequence[tuple[AnyEvent, DeliveryContext]]
                 ) -> Mapping[str, Receipt]:
        """Of these deliveries (of events it takes), those its port answered already; none
        when the port cannot tell in a set."""
        if self._answer is None:
            return {}
        taken = [Sent(event.document, ctx) for event, ctx in sent if event.name in self._routes]
        return self._answer(taken) if taken else {}


def _answer_of(port: object) -> Answer | None:
    return port.answered if isinstance(port, AnsweringPort) else None


def ledger_target(port: LedgerPort) -> Target:
    """The ERP's postings; and its customer master (`customer.upserted`) when the port
    keeps parties (`PartyPort`)."""
    parties: tuple[Route, ...] = ()
    if isinstance(port, PartyPort):
        parties = (route(CustomerUpserted, port.upsert_party, Milestone.PARTY_UPSERTED),)
    return PortTarget(port.system, (
        route(InvoiceIssued, port.post_invoice, Milestone.INVOICE_POSTED),
        route(CreditMemoIssued, port.post_credit_memo, Milestone.CREDIT_MEMO_POSTED),
        route(PaymentApplied, port.post_payment, Milestone.PAYMENT_APPLIED),
        route(RefundIssued, port.post_refund, Milestone.REFUND_POSTED),
        route(DisputeFundsWithdrawn, port.post_dispute_funds, Milestone.DISPUTE_FUNDS_POSTED),
        route(DisputeFundsReinstated, port.post_dispute_funds, Milestone.DISPUTE_FUNDS_POSTED),
        route(DisputeClosed, port.post_dispute_closure, Milestone.DISPUTE_CLOSURE_POSTED),
        route(RevenueJournalRecorded, port.post_journal_entry,
              Milestone.REVENUE_JOURNAL_POSTED),
        route(JournalEntrySummarised, port.post_journal_entry, None),
        *parties,
    ), port.find_receipt)


def revenue_target(port: RevenuePort) -> Target:
    def contract(document: SubscriptionContract, ctx: DeliveryContext) -> Receipt:
        return port.apply_contract(document, None, ctx)

    def amendment(document: ContractAmendment, ctx: DeliveryContext) -> Receipt:
        return port.apply_contract(document.contract, document, ctx)

    schedule = Milestone.REVENUE_SCHEDULE_CREATED
    return PortTarget(port.system, (
        route(ContractCreated, contract, schedule),
        route(ContractAmended, amendment, schedule),
        route(ContractRenewed, amendment, schedule),
        route(ContractCancelled, amendment, schedule),
        route(InvoiceIssued, port.record_invoice, Milestone.INVOICE_LINKED_TO_REVENUE),
        route(CreditMemoIssued, port.apply_credit_memo, Milestone.REVENUE_ADJUSTED),
        route(UsageRated, port.record_usage, Milestone.USAGE_RECOGNISED),
    ), port.find_receipt, _answer_of(port))


class OrderDesk(Protocol):
    """Turns a CPQ version into billing's order (`hub.order_desk.OrderDesk`)."""

    def order(self, contract: CommercialContract, ctx: DeliveryContext) -> SubscriptionOrder:
        ...

    def applied(self, contract: CommercialContract, receipt: Receipt) -> None: ...

    def refused(self, order: SubscriptionOrder, error: PermanentError) -> None: ...

    def differs(self, order: SubscriptionOrder, error: PermanentError) -> None: ...

    def failed(self, order: SubscriptionOrder, error: Exception) -> None: ...


def billing_target(port: SubscriptionPlatformPort, desk: OrderDesk) -> Target:
    """A subscription platform: each approved CPQ version ordered (translated, recorded,
    applied, its renewal baseline kept; refused, made differently by billing, or failed
    otherwise: recorded on the order, the delivery failing as usual), each customer
    upserted. Billing's own customers never come back to it:
    `config.FinsyncConfig.hub_settings` drops a route to the owner of the event's domain."""
    def order(document: CommercialContract, ctx: DeliveryContext) -> Receipt:
        placed = desk.order(document, ctx)
        try:
            receipt = port.apply_order(placed, ctx)
        except OrderNotAppliedError as exc:
            desk.differs(placed, exc)
            raise
        except PermanentError as exc:
            desk.refused(placed, exc)
            raise
        except Exception as exc:  # recorded on the order, then the delivery's as usual
            desk.failed(placed, exc)
            raise
        desk.applied(document, receipt)
        return receipt

    return PortTarget(port.system, (
        route(CommercialContractApproved, order, Milestone.ORDER_ACCEPTED),
        route(CustomerUpserted, port.upsert_customer, None),
    ), port.find_receipt)


def tax_target(port: TaxPort) -> Target:
    """The tax engine: invoices committed, credit memos committed (a `void` one voids its
    invoice's transaction); each failure a `tax_failure` (`classed_as_tax`)."""
    def invoice(document: Invoice, ctx: DeliveryContext) -> Receipt:
        return classed_as_tax(port.commit_invoice, document, ctx)

    def memo(document: CreditMemo, ctx: DeliveryContext) -> Receipt:
        return classed_as_tax(port.commit_credit_memo, document, ctx)

    return PortTarget(port.system, (
        route(InvoiceIssued, invoice, Milestone.TAX_COMMITTED),
        route(CreditMemoIssued, memo, Milestone.TAX_COMMITTED),
    ), port.find_receipt, _answer_of(port))


def classed_as_tax(call: Callable[[D, DeliveryContext], Receipt], document: D,
                   ctx: DeliveryContext) -> Receipt:
    """`call(document, ctx)`, its failures as `tax_failure`: an engine that cannot answer
    now is retried, one that refuses fails the delivery."""
    try:
        return call(document, ctx)
    except TaxUnavailableError as exc:
        raise TransientError(f"{exc.code}: {exc}",
                             exception_class=ExceptionClass.TAX_FAILURE) from exc
    except TaxRefusedError as exc:
        raise PermanentError(f"{exc.code}: {exc}",
                             exception_class=ExceptionClass.TAX_FAILURE) from exc
    except TransientError as exc:
        if exc.exception_class is not ExceptionClass.TARGET_UNAVAILABLE:
            raise
        raise TransientError(str(exc), exception_class=ExceptionClass.TAX_FAILURE,
                             retry_after_s=exc.retry_after_s) from exc


def amount_at_stake(event: AnyEvent | None) -> tuple[Money, ...]:
    """The money an undelivered event leaves unposted, per currency (in currency order;
    empty when it moves none). Amounts of two currencies are never added: a journal entry
    in several currencies puts its debits of each at stake.

    A contract event puts the whole (revised) contract value at stake: the revenue engine
    reallocates all of it, not only the change.
    """
    document = None if event is None else event.document
    if isinstance(document, Invoice | CreditMemo):
        return (document.total,)
    if isinstance(document, HeldInvoice):
        return (document.subtotal,)
    if isinstance(document, Payment | Refund | Dispute):
        return (document.amount,)
    if isinstance(document, DisputeFunds):
        return (abs(document.net),)
    if isinstance(document, DisputeClosure):
        return (abs(document.unrecovered),)
    if isinstance(document, JournalEntry):
        return per_currency(ln.amount for ln in document.lines if ln.side is Side.DEBIT)
    if isinstance(document, CommercialContract) and document.lines:
        ordered = per_currency(line.net_unit_price * line.quantity for line in document.lines)
        return tuple(m.quantize() for m in ordered)
    if isinstance(document, ContractAmendment):
        document = document.contract
    if isinstance(document, SubscriptionContract) and document.lines:
        value = per_currency(line.unit_price * line.quantity for line in document.lines)
        return tuple(m.quantize() for m in value)
    return ()


def recorded_stake(amounts: tuple[Money, ...]) -> tuple[Money | None, str]:
    """What an exception records of the money at stake: the amount when it is in one
    currency. An exception holds one amount, so money in several currencies is recorded as
    none, and the note (for its summary) names each currency's amount: never one sum."""
    if len(amounts) == 1:
        return amounts[0].quantize(), ""
    if not amounts:
        return None, ""
    return None, f" (at stake in {len(amounts)} currencies: {', '.join(map(str, amounts))})"
