"""The embedded billing platform as a source: its events as canonical envelopes, and a
publisher that hands its outbox to the hub.

Rules:
- Every event billing emits becomes one canonical envelope (docs/events.md): a
  `DraftEnvelope` of the typed event from source `billing`, written by the one codec
  (`codec.draft_to_json`: the catalogue's current schema version, the document under its
  key in its canonical shape).
- `source_event_id` names the aggregate version the event made:
  `<aggregate type>:<id>:v<version>` (documents issued once are version 1). Each aggregate
  version is made by exactly one event, so the id is unique and the same on every replay,
  and `causation_id` is computed, not looked up: the event id of the version that caused it.
- The publisher sends unpublished envelopes in outbox order and marks them published only
  after `send` returned (the hub committed them). A crash in between sends them again; the
  hub counts those as duplicates by `(source, source_event_id)`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

from sqlalchemy import Engine

from finsync.domain import codec
from finsync.domain.aggregate import AggregateRef
from finsync.domain.catalog import PriceModel, per_billing_period
from finsync.domain.contract import ContractLine, SubscriptionContract
from finsync.domain.envelope import DraftEnvelope
from finsync.domain.events import (
    AnyEvent,
    ContractAmended,
    ContractCancelled,
    ContractCreated,
    ContractRenewed,
)
from finsync.domain.ids import event_id_for
from finsync.domain.money import Money
from finsync.systems.billing.catalog import Catalog
from finsync.systems.billing.event import Emitted
from finsync.systems.billing.service import BillingService
from finsync.systems.billing.state import BillingConfig

SOURCE = "billing"

Send = Callable[[Sequence[bytes]], object]


def source_event_id(aggregate: AggregateRef) -> str:
    return f"{aggregate.type}:{aggregate.id}:v{aggregate.version or 1}"


def draft(emitted: Emitted, occurred_at: datetime,
          catalog: Catalog | None = None) -> DraftEnvelope:
    """The canonical envelope of one billing event. With the catalogue, contract prices are
    restated per billing period (see `canonical_prices`)."""
    event = emitted.event if catalog is None else canonical_prices(emitted.event, catalog)
    aggregate = emitted.aggregate
    cause = emitted.causation
    return DraftEnvelope(
        event, SOURCE, source_event_id(aggregate), occurred_at, emitted.correlation_id,
        causation_id=event_id_for(SOURCE, source_event_id(cause)) if cause else None,
        aggregate=AggregateRef(aggregate.type, aggregate.id, aggregate.version or 1))


def envelope(emitted: Emitted, occurred_at: datetime,
             catalog: Catalog | None = None) -> codec.JsonObject:
    """`draft` as the JSON the outbox keeps and the hub reads."""
    return codec.draft_to_json(draft(emitted, occurred_at, catalog))


def canonical_prices(event: AnyEvent, catalog: Catalog) -> AnyEvent:
    """Billing keeps a contract line's unit price per its price's frequency (120.00 a seat a
    year); the canonical contract carries it per unit per billing period (docs/events.md):
    30.00 a quarter when billed quarterly. Usage prices are per unit and stay as they are.
    The division is exact where it can be and otherwise carries 28 significant digits
    (`domain.catalog.per_billing_period`, which the hub's version check uses too); the
    revenue engine rounds once, at the line's value. Events without a contract are as
    they were."""
    if isinstance(event, ContractCreated):
        return replace(event, contract=_restated(event.contract, catalog))
    if isinstance(event, ContractAmended | ContractRenewed | ContractCancelled):
        amendment = event.amendment
        return replace(event, amendment=replace(
            amendment, contract=_restated(amendment.contract, catalog)))
    return event


def _restated(contract: SubscriptionContract, catalog: Catalog) -> SubscriptionContract:
    def line(value: ContractLine) -> ContractLine:
        price = catalog.plan(value.price_id).price
        if price.model is PriceModel.USAGE:
            return value
        months, per = contract.billing_frequency.months, price.frequency.months

        def per_period(money: Money) -> Money:
            return per_billing_period(money, months, per)

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
        them (e.g. `lambda bodies: hub.store("billing", bodies, {})`).
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
