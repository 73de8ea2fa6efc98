"""finsync's own CPQ JSON: a commercial contract version or a customer, one per body.

Rules:
- A body is one JSON object: `type` (`commercial_contract.approved` or `customer.upserted`),
  `occurred_at` (ISO 8601 with a time zone: when CPQ approved the version, or the account
  changed) and the document under its event's key (`commercial_contract`, `customer`) in
  the canonical codec's shape (`domain.codec`: amounts as decimal strings, dates ISO,
  `external_refs` an object). docs/cpq/sources.md shows both.
- `encode` writes what `translate` reads (`translate(encode(x))` gives `x` back).
- A document without `legal_entity` takes the source's default (`DocumentSettings`), if
  configured; otherwise it is a mapping error.
- Envelope: `source_event_id` is `commercial_contract:<id>:v<version>` (or `customer:…`),
  stable per version, so a re-sent version is a duplicate to the hub; a contract's
  `correlation_id` and `business_key` are its `quote_id`, a customer's its own id.
- Limits: the source's `InputLimits` bound the JSON before it is parsed (the hub then checks
  every value of the draft); `CpqLimits` bound lines and ramp steps. Every refusal is a
  `MappingError` with a code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from finsync.connectors.cpq.limits import DEFAULT, CpqLimits, check_contract, parse_json
from finsync.domain import codec
from finsync.domain.clock import require_utc
from finsync.domain.commercial import CommercialContract
from finsync.domain.envelope import DraftEnvelope
from finsync.domain.errors import DomainError, MappingError
from finsync.domain.events import (
    AnyEvent,
    CommercialContractApproved,
    CustomerUpserted,
    EventType,
)
from finsync.domain.limits import InputLimits
from finsync.domain.party import CustomerAccount

DEFAULT_INPUT = InputLimits()
TYPES = {EventType.COMMERCIAL_CONTRACT_APPROVED: "commercial_contract",
         EventType.CUSTOMER_UPSERTED: "customer"}


@dataclass(frozen=True, slots=True)
class DocumentSettings:
    legal_entity: str | None = None  # for documents that name none
    limits: InputLimits = DEFAULT_INPUT
    cpq_limits: CpqLimits = DEFAULT


DEFAULT_SETTINGS = DocumentSettings()


def encode(document: CommercialContract | CustomerAccount, occurred_at: datetime) -> bytes:
    """The body that carries `document` as approved (or changed) at `occurred_at`."""
    event: AnyEvent
    if isinstance(document, CommercialContract):
        event = CommercialContractApproved(document)
    else:
        event = CustomerUpserted(document)
    body = {"type": event.name.value, "occurred_at": require_utc(occurred_at).isoformat(),
            **codec.encode_event(event)}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def translate(settings: DocumentSettings, source: str, body: bytes) -> list[DraftEnvelope]:
    """The one draft a body carries (pure: same bytes, same draft)."""
    data = parse_json(body, settings.limits)
    return [draft_of(data, source, settings)]


def draft_of(data: object, source: str, settings: DocumentSettings) -> DraftEnvelope:
    """The draft of one parsed document (a body, or a line of a JSON-lines file)."""
    event, occurred_at = decode(data, settings)
    return _draft(event, source, occurred_at, settings.cpq_limits)


def decode(data: object, settings: DocumentSettings) -> tuple[AnyEvent, datetime]:
    """The event one parsed document carries, and when it occurred."""
    if not isinstance(data, Mapping):
        raise MappingError("a CPQ document is a JSON object", code="invalid_document")
    name = data.get("type")
    known = isinstance(name, str) and name in set(EventType)
    key = TYPES.get(EventType(name)) if known and isinstance(name, str) else None
    if key is None:
        raise MappingError(f"type must be one of {', '.join(sorted(TYPES))}, not "
                           f"{str(name)[:64]!r}", code="unsupported_type")
    occurred_at = _instant(data.get("occurred_at"))
    document = data.get(key)
    if isinstance(document, Mapping) and settings.legal_entity is not None:
        document = {"legal_entity": settings.legal_entity, **document}
    try:
        event = codec.decode_event(str(name), 1, {key: document})
    except MappingError:
        raise
    except DomainError as exc:
        raise MappingError(str(exc), code=exc.code) from exc
    return event, occurred_at


def _draft(event: AnyEvent, source: str, occurred_at: datetime,
           limits: CpqLimits) -> DraftEnvelope:
    if isinstance(event, CommercialContractApproved):
        contract = event.commercial_contract
        check_contract(contract, limits)
        return DraftEnvelope(event, source, f"commercial_contract:{contract.id}:"
                             f"v{contract.version}", occurred_at, contract.quote_id,
                             business_key=contract.quote_id)
    assert isinstance(event, CustomerUpserted)  # TYPES names the two
    customer = event.customer
    return DraftEnvelope(event, source, f"customer:{customer.id}:v{customer.version}",
                         occurred_at, customer.id)


def _instant(value: object) -> datetime:
    if not isinstance(value, str) or len(value) > 40:
        raise MappingError("occurred_at must be an ISO 8601 instant with a time zone",
                           code="invalid_timestamp")
    try:
        return require_utc(datetime.fromisoformat(value))
    except (ValueError, DomainError) as exc:
        raise MappingError(f"occurred_at {value!r} is not an ISO 8601 instant with a time "
                           f"zone: {exc}", code="invalid_timestamp") from exc
