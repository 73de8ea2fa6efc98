"""The catalogue of canonical events: one frozen class per event type.

Rules:
- Each class carries its wire name (`name`), the business domain it changes (for the
  ownership check), the aggregate type it belongs to, and its upcasters; its schema version
  is one more than the number of upcasters. The catalogue (`CATALOGUE`) is the set of these
  classes: a type that is not here cannot be accepted, it is a mapping error.
- An event holds one document, in a field named after the document (`InvoiceIssued.invoice`);
  that field name is the document's key in the wire payload (`domain.codec`).
- The aggregate of an event is its document's: the id, and the version where the document
  is versioned (customers, contracts, amendments). Documents issued once have no version.
- Adding an event type: a class here, its mapping in the source that emits it, and the route
  in the target that consumes it (docs/events.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import ClassVar, Generic, Protocol, TypeVar, cast

from finsync.domain.aggregate import AggregateRef
from finsync.domain.commercial import CommercialContract
from finsync.domain.contract import ContractAmendment, SubscriptionContract
from finsync.domain.dispute import Dispute, DisputeClosure, DisputeFunds
from finsync.domain.errors import MappingError
from finsync.domain.invoice import CreditMemo, HeldInvoice, Invoice, RatedUsage, UsageRecord
from finsync.domain.journal import JournalEntry
from finsync.domain.party import CustomerAccount
from finsync.domain.payment import Payment, PaymentAttempt, Refund
from finsync.domain.upcast import Upcaster, amendment_v1_to_v2, invoice_v1_to_v2


class BusinessDomain(StrEnum):
    """Domains of DESIGN §1, each with exactly one system of record."""

    CUSTOMER = "customer"
    COMMERCIAL = "commercial"  # quotes and contract terms as CPQ approved them
    CATALOG = "catalog"
    SUBSCRIPTION = "subscription"
    PAYMENTS = "payments"
    USAGE = "usage"
    TAX = "tax"
    LEDGER = "ledger"
    REVENUE = "revenue"


class EventType(StrEnum):
    """Wire names of the canonical event types (the classes below carry them)."""

    CUSTOMER_UPSERTED = "customer.upserted"
    COMMERCIAL_CONTRACT_APPROVED = "commercial_contract.approved"
    CONTRACT_CREATED = "contract.created"
    CONTRACT_AMENDED = "contract.amended"
    CONTRACT_RENEWED = "contract.renewed"
    CONTRACT_CANCELLED = "contract.cancelled"
    INVOICE_ISSUED = "invoice.issued"
    INVOICE_HELD = "invoice.held"
    INVOICE_RELEASED = "invoice.released"
    CREDIT_MEMO_ISSUED = "credit_memo.issued"
    PAYMENT_APPLIED = "payment.applied"
    REFUND_ISSUED = "refund.issued"
    DISPUTE_OPENED = "dispute.opened"
    DISPUTE_FUNDS_WITHDRAWN = "dispute.funds_withdrawn"
    DISPUTE_FUNDS_REINSTATED = "dispute.funds_reinstated"
    DISPUTE_CLOSED = "dispute.closed"
    PAYMENT_DECLINED = "payment.declined"
    USAGE_RECORDED = "usage.recorded"
    USAGE_RATED = "usage.rated"
    REVENUE_JOURNAL_RECORDED = "revenue.journal_recorded"
    JOURNAL_ENTRY_SUMMARISED = "journal_entry.summarised"


class Identified(Protocol):
    @property
    def id(self) -> str: ...


D = TypeVar("D", bound=Identified, covariant=True)


@dataclass(frozen=True, slots=True)
class CanonicalEvent(Generic[D]):
    """The base of every canonical event; `document` is the one document it carries."""

    name: ClassVar[EventType]
    domain: ClassVar[BusinessDomain]
    aggregate_type: ClassVar[str]
    upcasters: ClassVar[tuple[Upcaster, ...]] = ()

    @classmethod
    def schema_version(cls) -> int:
        return len(cls.upcasters) + 1

    @property
    def document(self) -> D:
        """The one document the event carries (its only field)."""
        return cast(D, getattr(self, _document_field(type(self))))

    def aggregate(self) -> AggregateRef:
        """What this event changes; documents issued once have no version."""
        return AggregateRef(self.aggregate_type, self.document.id, None)

    def check_aggregate(self, claimed: AggregateRef) -> None:
        """Refuse an envelope whose aggregate is not this event's document."""
        own = self.aggregate()
        if claimed.type != own.type:
            raise MappingError(f"{self.name} must be on a {own.type} aggregate, "
                               f"not {claimed.type}")
        if claimed.id != own.id:
            raise MappingError(f"{self.name}: the document is {own.id}, "
                               f"but aggregate.id is {claimed.id}")
        if own.version is not None and own.version != claimed.version:
            raise MappingError(f"{self.name}: the document is version {own.version}, "
                               f"but aggregate.version is {claimed.version}")


AnyEvent = CanonicalEvent[Identified]
_DOCUMENT_FIELDS: dict[type, str] = {}


def _document_field(cls: type) -> str:
    name = _DOCUMENT_FIELDS.get(cls)
    if name is None:
        (only,) = fields(cls)  # an event class has exactly one field: its document
        name = _DOCUMENT_FIELDS[cls] = only.name
    return name


@dataclass(frozen=True, slots=True)
class CustomerUpserted(CanonicalEvent[CustomerAccount]):
    name: ClassVar = EventType.CUSTOMER_UPSERTED
    domain: ClassVar = BusinessDomain.CUSTOMER
    aggregate_type: ClassVar = "customer_account"
    customer: CustomerAccount

    def aggregate(self) -> AggregateRef:
        return AggregateRef(self.aggregate_type, self.customer.id, self.customer.version)


@dataclass(frozen=True, slots=True)
class CommercialContractApproved(CanonicalEvent[CommercialContract]):
    """CPQ approved a version of a commercial contract: a new order, an amendment, a
    renewal or a cancellation (`CommercialContract.kind`). The hub orders it from the
    subscription platform (`hub.quote_to_cash`)."""

    name: ClassVar = EventType.COMMERCIAL_CONTRACT_APPROVED
    domain: ClassVar = BusinessDomain.COMMERCIAL
    aggregate_type: ClassVar = "commercial_contract"
    commercial_contract: CommercialContract

    def aggregate(self) -> AggregateRef:
        return AggregateRef(self.aggregate_type, self.commercial_contract.id,
                            self.commercial_contract.version)


@dataclass(frozen=True, slots=True)
class ContractCreated(CanonicalEvent[SubscriptionContract]):
    name: ClassVar = EventType.CONTRACT_CREATED
    domain: ClassVar = BusinessDomain.SUBSCRIPTION
    aggregate_type: ClassVar = "subscription_contract"
    contract: SubscriptionContract

    def aggregate(self) -> AggregateRef:
        return AggregateRef(self.aggregate_type, self.contract.id, self.contract.version)


@dataclass(frozen=True, slots=True)
class _ContractChanged(CanonicalEvent[ContractAmendment]):
    """Version n+1 of a contract; the aggregate is the contract, not the amendment."""

    domain: ClassVar = BusinessDomain.SUBSCRIPTION
    aggregate_type: ClassVar = "subscription_contract"
    upcasters: ClassVar = (amendment_v1_to_v2,)
    amendment: ContractAmendment

    def aggregate(self) -> AggregateRef:
        return AggregateRef(self.aggregate_type, self.amendment.contract_id,
                            self.amendment.version)


@dataclass(frozen=True, slots=True)
class ContractAmended(_ContractChanged):
    name: ClassVar = EventType.CONTRACT_AMENDED


@dataclass(frozen=True, slots=True)
class ContractRenewed(_ContractChanged):
    name: ClassVar = EventType.CONTRACT_RENEWED


@dataclass(frozen=True, slots=True)
class ContractCancelled(_ContractChanged):
    name: ClassVar = EventType.CONTRACT_CANCELLED


@dataclass(frozen=True, slots=True)
class InvoiceIssued(CanonicalEvent[Invoice]):
    name: ClassVar = EventType.INVOICE_ISSUED
    domain: ClassVar = BusinessDomain.SUBSCRIPTION
    aggregate_type: ClassVar = "invoice"
    upcasters: ClassVar = (invoice_v1_to_v2,)
    invoice: Invoice



@dataclass(frozen=True, slots=True)
class _HeldInvoiceChanged(CanonicalEvent[HeldInvoice]):
    domain: ClassVar = BusinessDomain.SUBSCRIPTION
    aggregate_type: ClassVar = "held_invoice"
    held_invoice: HeldInvoice

    def aggregate(self) -> AggregateRef:
        return AggregateRef(self.aggregate_type, self.held_invoice.id,
                            self.held_invoice.version)


@dataclass(frozen=True, slots=True)
class InvoiceHeld(_HeldInvoiceChanged):
    """Billing held an invoice as a draft: its tax could not be computed (`tax_failure`)."""

    name: ClassVar = EventType.INVOICE_HELD


@dataclass(frozen=True, slots=True)
class InvoiceReleased(_HeldInvoiceChanged):
    """A held draft was issued (as `held_invoice.invoice_id`): its tax was computed."""

    name: ClassVar = EventType.INVOICE_RELEASED


@dataclass(frozen=True, slots=True)
class CreditMemoIssued(CanonicalEvent[CreditMemo]):
    name: ClassVar = EventType.CREDIT_MEMO_ISSUED
    domain: ClassVar = BusinessDomain.SUBSCRIPTION
    aggregate_type: ClassVar = "credit_memo"
    credit_memo: CreditMemo



@dataclass(frozen=True, slots=True)
class PaymentApplied(CanonicalEvent[Payment]):
    name: ClassVar = EventType.PAYMENT_APPLIED
    domain: ClassVar = BusinessDomain.PAYMENTS
    aggregate_type: ClassVar = "payment"
    payment: Payment



@dataclass(frozen=True, slots=True)
class RefundIssued(CanonicalEvent[Refund]):
    name: ClassVar = EventType.REFUND_ISSUED
    domain: ClassVar = BusinessDomain.PAYMENTS
    aggregate_type: ClassVar = "refund"
    refund: Refund



@dataclass(frozen=True, slots=True)
class DisputeOpened(CanonicalEvent[Dispute]):
    """A cardholder disputed a payment (a chargeback, or an inquiry that may become one);
    the money it moves comes as `DisputeFundsWithdrawn`."""

    name: ClassVar = EventType.DISPUTE_OPENED
    domain: ClassVar = BusinessDomain.PAYMENTS
    aggregate_type: ClassVar = "dispute"
    dispute: Dispute


@dataclass(frozen=True, slots=True)
class _DisputeFundsMoved(CanonicalEvent[DisputeFunds]):
    """One step of a dispute's money (`domain.dispute`); its direction names the class."""

    domain: ClassVar = BusinessDomain.PAYMENTS
    aggregate_type: ClassVar = "dispute_funds"
    funds: DisputeFunds


@dataclass(frozen=True, slots=True)
class DisputeFundsWithdrawn(_DisputeFundsMoved):
    name: ClassVar = EventType.DISPUTE_FUNDS_WITHDRAWN

    def __post_init__(self) -> None:
        if not self.funds.withdrawn:
            raise MappingError(f"{self.name}: funds {self.funds.id} came back; send "
                               f"{EventType.DISPUTE_FUNDS_REINSTATED}")


@dataclass(frozen=True, slots=True)
class DisputeFundsReinstated(_DisputeFundsMoved):
    name: ClassVar = EventType.DISPUTE_FUNDS_REINSTATED

    def __post_init__(self) -> None:
        if self.funds.withdrawn:
            raise MappingError(f"{self.name}: funds {self.funds.id} left the balance; send "
                               f"{EventType.DISPUTE_FUNDS_WITHDRAWN}")


@dataclass(frozen=True, slots=True)
class DisputeClosed(CanonicalEvent[DisputeClosure]):
    name: ClassVar = EventType.DISPUTE_CLOSED
    domain: ClassVar = BusinessDomain.PAYMENTS
    aggregate_type: ClassVar = "dispute_closure"
    closure: DisputeClosure


@dataclass(frozen=True, slots=True)
class PaymentDeclined(CanonicalEvent[PaymentAttempt]):
    """A payment attempt that was declined or failed: no money moved, nothing to post; the
    hub records it on the commercial thread (dunning)."""

    name: ClassVar = EventType.PAYMENT_DECLINED
    domain: ClassVar = BusinessDomain.PAYMENTS
    aggregate_type: ClassVar = "payment_attempt"
    attempt: PaymentAttempt


@dataclass(frozen=True, slots=True)
class UsageRecorded(CanonicalEvent[UsageRecord]):
    name: ClassVar = EventType.USAGE_RECORDED
    domain: ClassVar = BusinessDomain.USAGE
    aggregate_type: ClassVar = "usage_record"
    usage: UsageRecord



@dataclass(frozen=True, slots=True)
class UsageRated(CanonicalEvent[RatedUsage]):
    name: ClassVar = EventType.USAGE_RATED
    domain: ClassVar = BusinessDomain.USAGE
    aggregate_type: ClassVar = "usage_charge"
    usage_charge: RatedUsage



@dataclass(frozen=True, slots=True)
class RevenueJournalRecorded(CanonicalEvent[JournalEntry]):
    """A revenue engine's period journal (Dr deferred revenue / Cr revenue …), sent to the
    ERP at period close."""

    name: ClassVar = EventType.REVENUE_JOURNAL_RECORDED
    domain: ClassVar = BusinessDomain.REVENUE
    aggregate_type: ClassVar = "journal_entry"
    journal_entry: JournalEntry



@dataclass(frozen=True, slots=True)
class JournalEntrySummarised(CanonicalEvent[JournalEntry]):
    """Many documents' entries, as the ERP's own rules made them, added up into one journal
    (the posting buffer's daily summary); posted in the ERP like any journal entry."""

    name: ClassVar = EventType.JOURNAL_ENTRY_SUMMARISED
    domain: ClassVar = BusinessDomain.LEDGER
    aggregate_type: ClassVar = "journal_entry"
    journal_entry: JournalEntry



CATALOGUE: Mapping[EventType, type[AnyEvent]] = {cls.name: cls for cls in (
    CustomerUpserted, ContractCreated, ContractAmended, ContractRenewed, ContractCancelled,
    InvoiceIssued, CreditMemoIssued, PaymentApplied, RefundIssued, DisputeOpened,
    DisputeFundsWithdrawn, DisputeFundsReinstated, DisputeClosed, UsageRecorded, UsageRated,
    RevenueJournalRecorded, JournalEntrySummarised, PaymentDeclined, InvoiceHeld,
    InvoiceReleased, CommercialContractApproved,
)}


def event_class(name: str) -> type[AnyEvent]:
    """The class of a wire name; an unknown name is a mapping error."""
    try:
        return CATALOGUE[EventType(name)]
    except ValueError:
        raise MappingError(f"unknown event type {name!r}", code="unknown_event_type") from None
