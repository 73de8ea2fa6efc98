"""Billing's events as canonical envelopes: every one reads back through the one codec (as
the hub reads it) to the very event billing emitted."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from finsync.connectors.embedded.billing import SOURCE, canonical_prices, envelope
from finsync.domain import codec
from finsync.domain.contract import CONTRACT_LEVEL, RampStep
from finsync.domain.envelope import DraftEnvelope
from finsync.domain.errors import DomainError
from finsync.domain.events import (
    CATALOGUE,
    AnyEvent,
    ContractAmended,
    ContractCancelled,
    ContractCreated,
    ContractRenewed,
    CreditMemoIssued,
    InvoiceIssued,
    PaymentApplied,
    RefundIssued,
    UsageRated,
    UsageRecorded,
)
from finsync.domain.ids import event_id_for
from finsync.domain.invoice import UsageRecord
from finsync.systems.billing.amendment import AmendSubscription
from finsync.systems.billing.cancellation import CancelMode, CancelSubscription
from finsync.systems.billing.clock import run
from finsync.systems.billing.credit import CreditReason, IssueCreditMemo
from finsync.systems.billing.edit import AddProduct, AddSeats, RemoveProduct
from finsync.systems.billing.event import Emitted
from finsync.systems.billing.handler import Command, RecordUsage, handle
from finsync.systems.billing.outcome import Outcome
from finsync.systems.billing.payment import PayInvoice, RefundPayment
from tests.unit.billing.support import (
    END,
    MONTHLY,
    QUARTERLY,
    catalog,
    invoices,
    seat_line,
    subscribed,
    usage_line,
    usd,
)

AT = datetime(2025, 5, 16, 12, 0, tzinfo=UTC)
BILLING_EVENTS: frozenset[type[AnyEvent]] = frozenset({
    ContractCreated, ContractAmended, ContractRenewed, ContractCancelled, InvoiceIssued,
    CreditMemoIssued, PaymentApplied, RefundIssued, UsageRecorded, UsageRated,
})


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


def _read_back(emitted: Emitted) -> DraftEnvelope:
    """The envelope as the outbox stores it (JSON text) and the hub reads it."""
    return codec.draft_from_text(json.dumps(envelope(emitted, AT), sort_keys=True))


def test_lifecycle_emits_every_billing_event_type() -> None:
    assert {type(e.event) for e in EMITTED} == BILLING_EVENTS


@pytest.mark.parametrize("emitted", EMITTED, ids=lambda e: e.event.name.value)
def test_envelope_reads_back_to_the_emitted_event(emitted: Emitted) -> None:
    sent = envelope(emitted, AT)
    read = _read_back(emitted)
    assert (read.event.name, read.source, read.correlation_id) == \
        (emitted.event.name, SOURCE, emitted.correlation_id)
    assert sent["schema_version"] == emitted.event.schema_version()
    assert read.event == emitted.event


def test_renewal_diff_maps_although_it_has_contract_level_ops() -> None:
    renewed = next(e for e in EMITTED if isinstance(e.event, ContractRenewed))
    assert isinstance(renewed.event, ContractRenewed)
    assert any(c.line_id == CONTRACT_LEVEL for c in renewed.event.amendment.changes)
    assert _read_back(renewed).claimed.version == 3  # created, amd_1, renewal


def test_contract_level_change_travels_with_a_star_line_id() -> None:
    cancelled = next(e for e in EMITTED if isinstance(e.event, ContractCancelled))
    sent = envelope(cancelled, AT)
    ops = {c["op"]: c["line_id"] for c in sent["payload"]["amendment"]["changes"]}
    assert ops["cancelled"] == "*"


def test_billing_events_are_all_in_the_hub_catalogue() -> None:
    assert set(CATALOGUE.values()) >= BILLING_EVENTS


def test_source_event_ids_are_unique_and_stable() -> None:
    ids = [envelope(e, AT)["source_event_id"] for e in EMITTED]
    assert len(ids) == len(set(ids))
    assert ids == [envelope(e, AT)["source_event_id"] for e in EMITTED]


def test_causation_is_the_event_id_of_the_version_that_caused_it() -> None:
    created, first_invoice = (envelope(e, AT) for e in EMITTED[:2])
    assert created["causation_id"] is None
    assert first_invoice["causation_id"] == event_id_for("billing", str(created["source_event_id"]))
    assert created["source_event_id"] == "subscription_contract:sub_1:v1"


def test_documents_issued_once_are_aggregate_version_1() -> None:
    invoice = next(e for e in EMITTED if isinstance(e.event, InvoiceIssued))
    assert envelope(invoice, AT)["aggregate"] == \
        {"type": "invoice", "id": invoice.event.document.id, "version": 1}


def test_naive_occurred_at_is_refused() -> None:
    with pytest.raises(DomainError, match="timezone-aware"):
        envelope(EMITTED[0], datetime(2025, 1, 1))  # noqa: DTZ001


def test_contract_prices_are_restated_per_billing_period() -> None:
    # 120.00 a seat a year, billed quarterly: 30.00 a seat a quarter on the wire; the usage
    # price (0.002 a call) stays per unit; billing's own event is left as it was
    created = subscribed(seat_line(), usage_line(), frequency=QUARTERLY).emitted[0]
    assert isinstance(created.event, ContractCreated)
    restated = canonical_prices(created.event, catalog())
    assert isinstance(restated, ContractCreated)
    assert [x.unit_price for x in restated.contract.lines] == [usd("30.00"), usd("0.002")]
    assert created.event.contract.lines[0].unit_price == usd("120.00")
    sent = envelope(created, AT, catalog())
    assert sent["payload"]["contract"]["lines"][0]["unit_price"] == "30.00"
