"""The transport's two message formats, writer beside reader: a raw request (what an intake
node publishes, the archiver reads) and a raw event's envelopes (what the archiver
publishes, a partition worker reads). Each reads back what was written; the message ids say
what a resend is, and stay within a header and a column."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finsync.domain.envelope import DraftEnvelope, Envelope
from finsync.domain.errors import DomainError
from finsync.domain.status import RawStatus
from finsync.hub.mapping import CanonicalMapper
from finsync.storage import event_log
from finsync.storage.raw_log import RawEvent, RawIn
from finsync.streaming.event_message import (
    RAW_ID,
    decode_envelopes,
    encode_envelopes,
    event_message,
)
from finsync.streaming.raw_message import (
    MSG_ID,
    TRANSPORT_ID_MAX,
    UnreadableRawMessageError,
    msg_id_for,
    raw_message,
    read_raw,
)
from tests.builders import envelope, payment_doc
from tests.strategies import EVENTS, drafts

AT = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)


def _mapped(body: bytes, source: str = "billing") -> list[Envelope]:
    return CanonicalMapper().map(RawEvent(0, source, AT, {}, body, RawStatus.RECEIVED))


def _payment(amount: str = "10.00", source_event_id: str = "gw-1") -> bytes:
    return json.dumps(envelope("payment.applied", source_event_id, ("payment", "pay_1", None),
                               {"payment": payment_doc("pay_1", amount, "inv_1")},
                               correlation_id="c1")).encode()


def test_a_raw_message_reads_back_as_the_raw_event_it_carries() -> None:
    body = _payment()
    raw = RawIn("billing", body, {"Content-Type": "application/json", "X-Request-Id": "r1",
                                  "Authorization": "Bearer secret"}, "application/json")
    message = raw_message("ns", raw, AT, _mapped(body))
    read = read_raw(message.body, {**message.headers, MSG_ID: message.msg_id})
    assert read.transport_id == message.msg_id
    assert read.received_at == AT
    assert read.raw == RawIn("billing", body, {"content-type": "application/json",
                                               "x-request-id": "r1"}, "application/json")
    assert message.subject == "ns.raw.billing"


def test_one_event_is_named_by_its_source_event_id_and_its_payload() -> None:
    body = _payment()
    [mapped] = _mapped(body)
    assert msg_id_for("billing", body, [mapped]) == (
        f"billing/gw-1#{event_log.event_hash(mapped)[:16]}")


def test_a_resend_with_the_same_event_has_the_same_id_and_a_changed_payload_another() -> None:
    # Other bytes, same event (keys reordered): caught by the duplicate window.
    reordered = json.dumps(dict(reversed(json.loads(_payment()).items()))).encode()
    assert msg_id_for("billing", reordered, _mapped(reordered)) == msg_id_for(
        "billing", _payment(), _mapped(_payment()))
    # The same source event id with another amount: its own id, so the database sees it
    # and finance gets a duplicate_event instead of a silent drop.
    assert msg_id_for("billing", _payment("11.00"), _mapped(_payment("11.00"))) != msg_id_for(
        "billing", _payment(), _mapped(_payment()))


def test_several_events_none_or_a_defect_are_named_by_the_body() -> None:
    both = b"[" + _payment() + b"," + _payment(source_event_id="gw-2") + b"]"
    digest = hashlib.sha256(both).hexdigest()
    assert msg_id_for("billing", both, _mapped(both)) == f"billing/sha256:{digest}"
    assert msg_id_for("billing", both, None) == f"billing/sha256:{digest}"
    assert msg_id_for("billing", both, []) == f"billing/sha256:{digest}"


@pytest.mark.parametrize(("source_event_id", "written"), [
    ("gw 1", "gw%201"), ("gw-\u00e9", "gw-%C3%A9"), ("gw\r\n1", "gw%0D%0A1"),
    ("50%", "50%25")])
def test_an_id_outside_printable_ascii_is_escaped(source_event_id: str, written: str) -> None:
    body = _payment(source_event_id=source_event_id)
    named = msg_id_for("billing", body, _mapped(body))
    assert named.startswith(f"billing/{written}#")


def test_an_id_too_long_for_its_column_becomes_its_digest() -> None:
    body = _payment(source_event_id="x" * 250)  # 255 with the source and the payload: over
    named = msg_id_for("billing", body, _mapped(body))
    assert named.startswith("billing/id-sha256:")
    assert len(named) <= TRANSPORT_ID_MAX
    assert named == msg_id_for("billing", body, _mapped(body))  # stable


@pytest.mark.parametrize("headers", [
    {},
    {MSG_ID: "billing/x", "Finsync-Source": "billing", "Finsync-Received-At": "yesterday",
     "Finsync-Headers": "{}"},
    {MSG_ID: "billing/x", "Finsync-Source": "billing",
     "Finsync-Received-At": "2026-01-01T00:00:00", "Finsync-Headers": "{}"},  # naive
    {MSG_ID: "billing/x", "Finsync-Source": "billing",
     "Finsync-Received-At": "2026-01-01T00:00:00Z", "Finsync-Headers": "[1]"},
    {MSG_ID: "x" * 256, "Finsync-Source": "billing",
     "Finsync-Received-At": "2026-01-01T00:00:00Z", "Finsync-Headers": "{}"},
    {MSG_ID: "x/1", "Finsync-Source": "b" * 65,  # longer than raw_events.source
     "Finsync-Received-At": "2026-01-01T00:00:00Z", "Finsync-Headers": "{}"},
])
def test_a_message_no_intake_node_wrote_is_unreadable(headers: dict[str, str]) -> None:
    with pytest.raises(UnreadableRawMessageError):
        read_raw(b"{}", headers)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(*(drafts(s) for s in EVENTS.values())), min_size=1, max_size=3),
       st.datetimes(timezones=st.just(UTC)))
def test_envelopes_read_back_equal_through_an_event_message(drafted: list[DraftEnvelope],
                                                           received_at: datetime) -> None:
    stamped = [d.stamp(received_at) for d in drafted]
    assert decode_envelopes(encode_envelopes(stamped)) == stamped


def test_an_event_message_is_named_by_its_raw_event_and_partitioned_by_its_first_aggregate(
        ) -> None:
    envelopes = _mapped(_payment())
    message = event_message("ns", 8, 42, envelopes)
    assert message.msg_id == "raw:42" and message.headers == {RAW_ID: "42"}
    assert message.subject.startswith("ns.events.")
    assert 0 <= int(message.subject.rsplit(".", 1)[1]) < 8
    assert decode_envelopes(message.data) == envelopes


@pytest.mark.parametrize("data", [b"not json", b"{}", b'[{"event_id": "x"}]'])
def test_an_event_message_not_written_here_is_refused(data: bytes) -> None:
    with pytest.raises(DomainError):
        decode_envelopes(data)
