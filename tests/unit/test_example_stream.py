"""The canonical example stream of the reference workflow (examples/reference-workflow.jsonl).

Every line must map as the hub maps it, the one v1 invoice must upcast without changing its
totals, the amendment's events must share its correlation id, and the incremental invoice's
proration must be what the day count gives (and what docs/reference-workflow.md shows).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from finsync.domain import codec
from finsync.domain.contract import ContractAmendment, SubscriptionContract
from finsync.domain.envelope import Envelope
from finsync.domain.events import event_class
from finsync.domain.invoice import CreditMemo, Invoice
from finsync.domain.money import Money, total
from finsync.domain.payment import Payment, Refund
from finsync.domain.status import RawStatus
from finsync.hub.mapping import CanonicalMapper
from finsync.storage.raw_log import RawEvent

ROOT = Path(__file__).resolve().parents[2]
STREAM = ROOT / "examples" / "reference-workflow.jsonl"
WALKTHROUGH = ROOT / "docs" / "reference-workflow.md"
RECEIVED_AT = datetime(2026, 8, 31, 12, 0, tzinfo=UTC)
LINES = [line for line in STREAM.read_bytes().splitlines() if line.strip()]


def _map(line: bytes) -> Envelope:
    raw = RawEvent(id=1, source="canonical", received_at=RECEIVED_AT, headers={}, body=line,
                   status=RawStatus.RECEIVED)
    (envelope,) = CanonicalMapper().map(raw)
    return envelope


def _mapped() -> list[Envelope]:
    return [_map(line) for line in LINES]


def _document(envelope: Envelope) -> Any:
    return envelope.event.document


def _one(type_: str, **fields: object) -> Envelope:
    """The one event of `type_` whose document has these field values."""
    found = [e for e in _mapped() if e.type == type_
             and all(getattr(_document(e), k) == v for k, v in fields.items())]
    assert len(found) == 1, f"expected one {type_} with {fields}, found {len(found)}"
    return found[0]


@pytest.mark.parametrize("line", LINES, ids=[json.loads(x)["source_event_id"] for x in LINES])
def test_every_line_maps_without_error(line: bytes) -> None:
    envelope = _map(line)
    assert envelope.source == "billing"
    assert envelope.received_at == RECEIVED_AT
    assert envelope.schema_version == event_class(envelope.type).schema_version()
    _document(envelope)


def test_old_schema_appears_exactly_once() -> None:
    sent = [json.loads(line) for line in LINES]
    old = [e for e in sent if e["schema_version"] < event_class(e["type"]).schema_version()]
    assert [(e["type"], e["schema_version"]) for e in old] == [("invoice.issued", 1)]


def test_v1_invoice_upcasts_to_v2_with_same_totals() -> None:
    line = next(x for x in LINES if json.loads(x)["schema_version"] == 1
                and json.loads(x)["type"] == "invoice.issued")
    sent = json.loads(line)["payload"]["invoice"]
    envelope = _map(line)
    invoice: Invoice = _document(envelope)
    assert envelope.schema_version == 2
    assert "total_minor" not in codec.encode_event(envelope.event)["invoice"]
    for name in ("subtotal", "tax_total", "total"):
        assert getattr(invoice, name).to_minor() == sent[f"{name}_minor"]
    assert [x.amount.to_minor() for x in invoice.lines] == \
        [x["amount_minor"] for x in sent["lines"]]


def test_amendment_events_share_one_correlation_id() -> None:
    events = _mapped()
    amended = next(e for e in events if e.type == "contract.amended")
    amendment: ContractAmendment = _document(amended)
    caused = _caused_by(amended, events)
    assert amended.correlation_id == amendment.id
    assert {e.type for e in caused} == {"invoice.issued", "payment.applied"}
    assert {e.correlation_id for e in [amended, *caused]} == {amendment.id}
    assert [e for e in events if e.correlation_id == amendment.id] == [amended, *caused]


def _caused_by(root: Envelope, events: list[Envelope]) -> list[Envelope]:
    """Every event whose causation chain leads back to `root`, in stream order."""
    chain, found = {root.event_id}, []
    for event in events:
        if event.causation_id in chain:
            chain.add(event.event_id)
            found.append(event)
    return found


def _prorated(line_id: str, before: SubscriptionContract, amendment: ContractAmendment) -> Money:
    """Added quantity x annual unit price x days remaining / days in the billing period."""
    after = amendment.contract
    new = next(x for x in after.lines if x.line_id == line_id)
    old_quantity = sum(x.quantity for x in before.lines if x.line_id == line_id)
    remaining = (after.end_date - amendment.effective_date).days
    period = (after.end_date - after.start_date).days
    exact = new.unit_price.amount * (new.quantity - old_quantity) * remaining / Decimal(period)
    return Money(exact, after.currency).quantize()


def test_incremental_invoice_proration_matches_day_count() -> None:
    before: SubscriptionContract = _document(_one("contract.created"))
    amendment: ContractAmendment = _document(_one("contract.amended"))
    invoice: Invoice = _document(_one("invoice.issued", contract_version=amendment.version))
    assert (amendment.contract.end_date - amendment.effective_date).days == 230
    for line in invoice.lines:
        assert line.proration
        assert (line.service_start, line.service_end) == \
            (amendment.effective_date, amendment.contract.end_date)
        assert line.amount == _prorated(line.line_id, before, amendment)
    assert invoice.subtotal == total([x.amount for x in invoice.lines], invoice.currency)


def test_walkthrough_shows_the_derived_proration() -> None:
    before: SubscriptionContract = _document(_one("contract.created"))
    amendment: ContractAmendment = _document(_one("contract.amended"))
    text = WALKTHROUGH.read_text()
    for line in amendment.contract.lines:
        assert str(_prorated(line.line_id, before, amendment).amount) in text


def test_source_event_ids_are_unique() -> None:
    ids = [e.source_event_id for e in _mapped()]
    assert len(ids) == len(set(ids))


def test_causation_ids_name_earlier_events() -> None:
    seen: set[str] = set()
    for event in _mapped():
        assert event.causation_id is None or event.causation_id in seen
        seen.add(event.event_id)


def test_occurred_at_is_in_stream_order() -> None:
    moments = [e.occurred_at for e in _mapped()]
    assert moments == sorted(moments)


def test_customer_balance_settles_to_zero() -> None:
    documents = [_document(e) for e in _mapped()]
    owed = [d.total for d in documents if isinstance(d, Invoice)]
    owed += [d.amount for d in documents if isinstance(d, Refund)]
    paid = [a.amount for d in documents if isinstance(d, Payment) for a in d.applications]
    paid += [d.total for d in documents if isinstance(d, CreditMemo)]
    assert total(owed, "USD") - total(paid, "USD") == Money.zero("USD")
