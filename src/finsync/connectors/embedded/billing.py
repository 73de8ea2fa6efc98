"""The embedded billing platform as a source: its events as canonical envelopes, and a
publisher that hands its outbox to the hub.

Rules:
- Every event billing emits becomes one envelope exactly as the hub reads it
  (docs/events.md): source `billing`, the catalogue's current schema version, the document
  under the type's payload key in its canonical shape (`systems.billing.payload`).
- `source_event_id` names the aggregate version the event made:
  `<aggregate type>:<id>:v<version>` (documents issued once are version 1). Each aggregate
  version is made by exactly one event, so the id is unique and the same on every replay,
  and `causation_id` is computed, not looked up: the event id of the version that caused it.
- Only types of the hub's catalogue are sent (`PUBLISHED_TYPES`); for any other the writer
  returns None and the service stores nothing.
- The publisher sends unpublished envelopes in outbox order and marks them published only
  after `send` returned (the hub committed them). A crash in between sends them again; the
  hub counts those as duplicates by `(source, source_event_id)`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from finsync.domain.catalog import PriceModel
from finsync.domain.clock import require_utc
from finsync.domain.contract import ContractAmendment, ContractLine, SubscriptionContract
from finsync.domain.envelope import AggregateRef
from finsync.domain.event_type import EVENT_TYPES
from finsync.domain.ids import event_id_for
from finsync.domain.money import Money
from finsync.domain.upcast import UPCASTERS
from finsync.systems.billing import event as billing_event
from finsync.systems.billing import payload
from finsync.systems.billing.catalog import Catalog
from finsync.systems.billing.event import Emitted
from finsync.systems.billing.service import BillingService
from finsync.systems.billing.state import BillingConfig

SOURCE = "billing"
PUBLISHED_TYPES = frozenset({
    billing_event.CONTRACT_CREATED, billing_event.CONTRACT_AMENDED,
    billing_event.CONTRACT_RENEWED, billing_event.CONTRACT_CANCELLED,
    billing_event.INVOICE_ISSUED, billing_event.CREDIT_MEMO_ISSUED,
    billing_event.PAYMENT_APPLIED, billing_event.REFUND_ISSUED, billing_event.USAGE_RECORDED,
    billing_event.USAGE_RATED,
})

Send = Callable[[Sequence[bytes]], object]


def source_event_id(aggregate: AggregateRef) -> str:
    return f"{aggregate.type}:{aggregate.id}:v{aggregate.version or 1}"


def envelope(emitted: Emitted, occurred_at: datetime,
             catalog: Catalog | None = None) -> dict[str, Any] | None:
    """The canonical envelope of one billing event, or None when the hub takes no such type.
    With the catalogue, contract prices are restated per billing period (see
    `canonical_prices`)."""
    if emitted.type not in PUBLISHED_TYPES:
        return None
    document = emitted.document if catalog is None else canonical_prices(emitted.document,
                                                                         catalog)
    kind = EVENT_TYPES[emitted.type]
    aggregate = emitted.aggregate
    cause = emitted.causation
    return {
        "type": emitted.type,
        "schema_version": UPCASTERS.current_version(emitted.type),
        "source": SOURCE,
        "source_event_id": source_event_id(aggregate),
        "occurred_at": require_utc(occurred_at).isoformat(),
        "correlation_id": emitted.correlation_id,
        "causation_id": event_id_for(SOURCE, source_event_id(cause)) if cause else None,
        "idempotency_key": None,
        "aggregate": {"type": aggregate.type, "id": aggregate.id,
                      "version": aggregate.version or 1},
        "payload": {kind.document_key: payload.document(document)},
    }


def canonical_prices(document: object, catalog: Catalog) -> object:
    """Billing keeps a contract line's unit price per its price's frequency (120.00 a seat a
    year); the canonical contract carries it per unit per billing period (docs/events.md):
    30.00 a quarter when billed quarterly. Usage prices are per unit and stay as they are.
    The division is exact where it can be and otherwise carries 28 significant digits; the
    revenue engine rounds once, at the line's value."""
    if isinstance(document, ContractAmendment):
        return replace(document, contract=_restated(document.contract, catalog))
    if isinstance(document, SubscriptionContract):
        return _restated(document, catalog)
    return document


def _restated(contract: SubscriptionContract, catalog: Catalog) -> SubscriptionContract:
    def line(value: ContractLine) -> ContractLine:
        price = catalog.plan(value.price_id).price
        if price.model is PriceModel.USAGE:
            return value
        months, per = contract.billing_frequency.months, price.frequency.months

        def per_period(money: Money) -> Money:
            return Money(money.amount * months / per, money.currency)

        return replace(value, unit_price=per_period(value.unit_price), ramp=tuple(
            replace(step, unit_price=per_period(step.unit_price)) for step in value.ramp))

    return replace(contract, lines=tuple(line(x) for x in contract.lines))


def billing_service(engine: Engine, config: BillingConfig,
                    clock: Callable[[], datetime]) -> BillingService:
    """The billing service whose outbox holds this connector's envelopes."""
    return BillingService(engine, config, clock,
                          lambda emitted, at: envelope(emitted, at, config.catalog))


class OutboxPublisher:
    """Hands billing's outbox to the hub, in order, at least once."""

    def __init__(self, service: BillingService, batch_size: int = 100,
                 batches_max: int = 10_000) -> None:
        if batch_size <= 0 or batches_max <= 0:
            raise ValueError("batch_size and batches_max must be positive")
        self._service, self._batch_size, self._batches_max = service, batch_size, batches_max

    def publish(self, send: Send) -> int:
        """Send every unpublished envelope; `send` must return only after the hub committed
        them (e.g. `lambda bodies: intake.store([RawIn("canonical", b, {}) for b in bodies])`).
        Returns how many were sent."""
        sent = 0
        for _ in range(self._batches_max):
            items = self._service.pending(self._batch_size)
            if not items:
                break
            send([item.envelope.encode() for item in items])
            self._service.mark_published([item.seq for item in items])
            sent += len(items)
        return sent
