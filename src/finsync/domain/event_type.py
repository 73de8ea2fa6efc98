"""The catalogue of canonical event types.

Each type names the business domain it changes (for the ownership check), the aggregate it
belongs to, the payload key that holds its document and the decoder for that document.
A type that is not here cannot be accepted: it is a mapping error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from finsync.domain import codec
from finsync.domain.contract import ContractAmendment, SubscriptionContract
from finsync.domain.envelope import Envelope
from finsync.domain.errors import MappingError
from finsync.domain.party import CustomerAccount


class BusinessDomain(StrEnum):
    """Domains of DESIGN §1, each with exactly one system of record."""

    CUSTOMER = "customer"
    CATALOG = "catalog"
    SUBSCRIPTION = "subscription"
    PAYMENTS = "payments"
    USAGE = "usage"
    TAX = "tax"
    LEDGER = "ledger"
    REVENUE = "revenue"


@dataclass(frozen=True, slots=True)
class EventType:
    name: str
    domain: BusinessDomain
    aggregate_type: str
    document_key: str
    decoder: Callable[[codec.Reader], Any]

    def decode(self, envelope: Envelope) -> Any:
        """The typed document this event carries; checks it is the aggregate it claims."""
        if envelope.aggregate.type != self.aggregate_type:
            raise MappingError(f"{self.name} must be on a {self.aggregate_type} aggregate, "
                               f"not {envelope.aggregate.type}")
        document = self.decoder(codec.Reader(envelope.payload.get(self.document_key),
                                             self.document_key))
        doc_id, doc_version = _identity(document)
        if doc_id != envelope.aggregate.id:
            raise MappingError(f"{self.name}: the document is {doc_id}, "
                               f"but aggregate.id is {envelope.aggregate.id}")
        if doc_version is not None and doc_version != envelope.aggregate.version:
            raise MappingError(f"{self.name}: the document is version {doc_version}, "
                               f"but aggregate.version is {envelope.aggregate.version}")
        return document


def _identity(document: Any) -> tuple[str, int | None]:
    """The aggregate id a document belongs to, and its version where it carries one."""
    if isinstance(document, ContractAmendment):
        return document.contract_id, document.version
    if isinstance(document, SubscriptionContract | CustomerAccount):
        return document.id, document.version
    return str(document.id), None


_S = BusinessDomain.SUBSCRIPTION
EVENT_TYPES: dict[str, EventType] = {t.name: t for t in (
    EventType("customer.upserted", BusinessDomain.CUSTOMER, "customer_account", "customer",
              codec.decode_customer),
    EventType("contract.created", _S, "subscription_contract", "contract", codec.decode_contract),
    EventType("contract.amended", _S, "subscription_contract", "amendment",
              codec.decode_amendment),
    EventType("contract.renewed", _S, "subscription_contract", "amendment",
              codec.decode_amendment),
    EventType("contract.cancelled", _S, "subscription_contract", "amendment",
              codec.decode_amendment),
    EventType("invoice.issued", _S, "invoice", "invoice", codec.decode_invoice),
    EventType("credit_memo.issued", _S, "credit_memo", "credit_memo", codec.decode_credit_memo),
    EventType("payment.applied", BusinessDomain.PAYMENTS, "payment", "payment",
              codec.decode_payment),
    EventType("refund.issued", BusinessDomain.PAYMENTS, "refund", "refund", codec.decode_refund),
    EventType("usage.recorded", BusinessDomain.USAGE, "usage_record", "usage",
              codec.decode_usage),
    # A revenue engine's period journal (Dr deferred revenue / Cr revenue …), sent to the
    # ERP at period close.
    EventType("revenue.journal_recorded", BusinessDomain.REVENUE, "journal_entry",
              "journal_entry", codec.decode_journal_entry),
    EventType("usage.rated", BusinessDomain.USAGE, "usage_charge", "usage_charge",
              codec.decode_rated_usage),
)}


def event_type(name: str) -> EventType:
    try:
        return EVENT_TYPES[name]
    except KeyError:
        raise MappingError(f"unknown event type {name!r}", code="unknown_event_type") from None
