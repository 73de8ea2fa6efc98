"""Billing's events as canonical envelopes: every one maps back through the hub's canonical
mapper to the very document billing issued."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import pytest

from finsync.connectors.embedded.billing import (
    PUBLISHED_TYPES,
    SOURCE,
    envelope,
)
from finsync.domain.contract import ContractAmendment, ContractChange, RampStep
from finsync.domain.errors import DomainError
from finsync.domain.event_type import EVENT_TYPES, event_type
from finsync.domain.ids import event_id_for
from finsync.domain.invoice import RatedUsage, UsageRecord
from finsync.domain.upcast import UPCASTERS
from finsync.hub.mapping import canonical
from finsync.storage.raw_log import RawEvent
from finsync.systems.billing.amendment import AmendSubscription
from finsync.systems.billing.cancellation import CancelMode, CancelSubscription
from finsync.systems.billing.clock import run
from finsync.systems.billing.credit import CreditReason, IssueCreditMemo
from finsync.systems.billing.edit import AddProduct, AddSeats, RemoveProduct
from finsync.systems.billing.event import Emitted, Outcome, UsageCharge
from finsync.systems.billing.handler import Command, RecordUsage, handle
from finsync.systems.billing.payment import PayInvoice, RefundPayment
from tests.unit.billing.support import (
    END,
    MONTHLY,
    invoices,
    seat_line,
    subscribed,
    usage_line,
    usd,
)

AT = datetime(2025, 5, 16, 12, 0, tzinfo=UTC)
RAW = RawEvent(1, "canonical", AT, {}, b"", "received")


def _lifecycle() -> tuple[Emitted, ...]:
    """New, upgrade with a ramped module, usage, payment, SLA credit, refund, renewal,
    removal of a ramped line, cancellation with refund."""
    ramp = (RampStep(date(2025, 9, 1), 900, usd("30.00")),)
    outcome = subscribed(seat_line(), usage_line(), arrears=MONTHLY)
    first = invoices(outcome.emitted)[0]
    commands: list[Command] = [
        RecordUsage(UsageRecord("use_1", "sub_1", "prod_api", 25_000, date(2025, 2, 3))),
        PayInvoice("pay_1", first.id, first.total, date(2025, 1, 20)),
        AmendSubscription("amd_1", "sub_1", date(2025, 5, 16),
                          (AddSeats("ln_seats", 300),
                           AddProduct("ln_analytics", "price_analytics", 800, ramp=ramp))),
        IssueCreditMemo(first.id, CreditReason.SLA_CREDIT, date(2025, 6, 1), usd("100.00"),
                        "sla_1"),
        RefundPayment("re_1", "pay_1", usd("100.00"), date(2025, 6, 2)),
    ]
    for command in commands:
        outcome = outcome.then(handle(outcome.state, command))
    outcome = outcome.then(run(outcome.state, END))
    return _ending(outcome).emitted


def _ending(outcome: Outcome) -> Outcome:
    day = date(2026, 3, 1)
    outcome = outcome.then(handle(outcome.state, AmendSubscription(
        "amd_2", "sub_1", day, (RemoveProduct("ln_seats"),))))
    return outcome.then(handle(outcome.state, CancelSubscription(
        "can_1", "sub_1", date(2026, 3, 10), CancelMode.IMMEDIATE_WITH_REFUND)))


EMITTED = _lifecycle()


def _as_sent(document: Any) -> Any:
    """What the wire carries: a rating as the canonical RatedUsage; for an amendment,
    contract-level ops and empty values."""
    if isinstance(document, UsageCharge):
        return RatedUsage(document.id, document.contract_id, document.line_id,
                          document.product_id, document.period.start, document.period.end,
                          document.used, document.included, document.billable, document.amount,
                          document.drawn, document.invoiced, document.invoice_id)
    if not isinstance(document, ContractAmendment):
        return document
    changes = tuple(ContractChange(c.op, c.line_id or "*", c.before or None, c.after or None)
                    for c in document.changes)
    return replace(document, changes=changes)


def test_lifecycle_emits_every_published_type() -> None:
    assert {e.type for e in EMITTED} == PUBLISHED_TYPES


@pytest.mark.parametrize("emitted", [e for e in EMITTED if e.type in PUBLISHED_TYPES],
                         ids=lambda e: e.type)
def test_envelope_maps_back_to_the_issued_document(emitted: Emitted) -> None:
    sent = envelope(emitted, AT)
    assert sent is not None
    mapped = canonical(sent, RAW)
    assert (mapped.type, mapped.source, mapped.correlation_id) == \
        (emitted.type, SOURCE, emitted.correlation_id)
    assert mapped.schema_version == UPCASTERS.current_version(emitted.type)
    assert event_type(mapped.type).decode(mapped) == _as_sent(emitted.document)


def test_renewal_diff_maps_although_it_has_contract_level_ops() -> None:
    renewed = next(e for e in EMITTED if e.type == "contract.renewed")
    assert any(c.line_id == "" for c in renewed.document.changes)  # type: ignore[union-attr]
    sent = envelope(renewed, AT)
    assert sent is not None
    assert canonical(sent, RAW).aggregate.version == 3  # created, amd_1, renewal


def test_contract_level_change_travels_with_a_star_line_id() -> None:
    cancelled = next(e for e in EMITTED if e.type == "contract.cancelled")
    sent = envelope(cancelled, AT)
    assert sent is not None
    ops = {c["op"]: c["line_id"] for c in sent["payload"]["amendment"]["changes"]}
    assert ops["cancelled"] == "*"


def test_published_types_are_all_in_the_hub_catalogue() -> None:
    assert EVENT_TYPES.keys() >= PUBLISHED_TYPES


def test_source_event_ids_are_unique_and_stable() -> None:
    sent = [envelope(e, AT) for e in EMITTED]
    ids = [s["source_event_id"] for s in sent if s]
    assert len(ids) == len(set(ids))
    assert ids == [s["source_event_id"] for s in (envelope(e, AT) for e in EMITTED) if s]


def test_causation_is_the_event_id_of_the_version_that_caused_it() -> None:
    sent = [s for s in (envelope(e, AT) for e in EMITTED[:4]) if s]
    created, first_invoice = sent[0], sent[1]
    assert created["causation_id"] is None
    assert first_invoice["causation_id"] == event_id_for("billing", created["source_event_id"])
    assert created["source_event_id"] == "subscription_contract:sub_1:v1"


def test_documents_issued_once_are_aggregate_version_1() -> None:
    invoice = next(e for e in EMITTED if e.type == "invoice.issued")
    sent = envelope(invoice, AT)
    assert sent is not None and sent["aggregate"]["version"] == 1


def test_naive_occurred_at_is_refused() -> None:
    with pytest.raises(DomainError, match="timezone-aware"):
        envelope(EMITTED[0], datetime(2025, 1, 1))  # noqa: DTZ001

