"""The messages events out publishes (`streaming.out_message`): what a consumer reads."""

from __future__ import annotations

import json

from finsync.domain import codec
from finsync.domain.status import EventStatus
from finsync.storage import event_log
from finsync.storage.relay_log import EventRow, MilestoneRow
from finsync.streaming.out_message import (
    BODY_MAX_BYTES,
    FORMAT_EVENT,
    FORMAT_MILESTONE,
    event_message,
    milestone_message,
)
from tests.builders import T0, envelope, invoice_doc


def _row(position: int = 7, **changes: object) -> EventRow:
    env = codec.draft_from_json(envelope(
        "invoice.issued", "inv-1", ("invoice", "inv_1", None),
        {"invoice": invoice_doc("inv_1", "1200.00")}, correlation_id="ord_1")).stamp(T0)
    stored = event_log.event_row(env, None, EventStatus.ACCEPTED, T0)
    values = {**{k: stored[k] for k in (
        "event_id", "type", "schema_version", "source", "source_event_id", "business_key",
        "occurred_at", "received_at", "correlation_id", "causation_id", "aggregate_type",
        "aggregate_id", "aggregate_version", "payload")}, **changes}
    return EventRow(position=position, status=EventStatus.ACCEPTED, **values)  # type: ignore[arg-type]


def test_an_event_goes_out_under_its_entity_and_type_with_its_id() -> None:
    row = _row()
    out = event_message("fs", row)
    body = json.loads(out.data)
    assert out.subject == "fs.out.events.le_us.invoice.issued"
    assert out.msg_id == row.event_id and out.headers == {"Finsync-Format": FORMAT_EVENT}
    assert body["format"] == FORMAT_EVENT and body["position"] == 7
    assert body["payload"] == json.loads(row.payload) and body["replaces"] is None
    assert body["occurred_at"] == T0.isoformat()


def test_a_body_above_the_limit_goes_out_without_its_payload() -> None:
    # An invoice of 20,000 lines: its payload alone is over the limit.
    doc = json.loads(_row().payload)
    line = doc["invoice"]["lines"][0]
    doc["invoice"]["lines"] = [dict(line, line_id=f"ln_{i}") for i in range(20_000)]
    out = event_message("fs", _row(payload=json.dumps(doc)))
    body = json.loads(out.data)
    assert len(out.data) <= BODY_MAX_BYTES
    assert body["payload"] is None
    assert body["payload_omitted"]["reason"] == "too_large"
    assert body["payload_omitted"]["bytes"] > BODY_MAX_BYTES
    assert body["event_id"] == out.msg_id  # everything else is there to find it by


def test_a_milestone_goes_out_under_its_name_with_its_id() -> None:
    out = milestone_message("fs", MilestoneRow(42, "ord_1", "invoice_posted", "evt_1",
                                               "ledger", T0))
    assert out.subject == "fs.out.milestones.invoice_posted"
    assert out.msg_id == "milestone:42"
    assert json.loads(out.data) == {
        "format": FORMAT_MILESTONE, "id": 42, "name": "invoice_posted",
        "correlation_id": "ord_1", "event_id": "evt_1", "target": "ledger",
        "recorded_at": T0.isoformat()}
