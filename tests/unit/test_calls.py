"""The call recorder's plumbing: who a call is for (the delivery's context variable), its
status whatever the outcome, and its duration."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from finsync.config import ConfigError, parse_config
from finsync.connectors.calls import Channel, Subject, current_subjects, delivering, recorded
from finsync.connectors.filedrop.ledger import FileDropLedger
from finsync.connectors.ports import DeliveryContext, Posting
from finsync.domain.call import Call
from finsync.domain.errors import ExceptionClass, PermanentError, TransientError
from finsync.domain.events import BusinessDomain, InvoiceIssued
from tests.ledgerkit import invoice


class Calls(list[Call]):
    def record(self, call: Call) -> None:
        self.append(call)


def test_a_call_inside_a_delivery_is_filed_under_it_and_timed() -> None:
    calls = Calls()
    with (delivering([Subject("amd_1", "evt_1:ledger")]),
          recorded(calls, "ledger", Channel.PORT, "post_invoice", "LedgerPort") as exchange):
        time.sleep(0.002)
        exchange.request({"document": "inv_1"}, 10)
    (call,) = calls
    assert call.subjects == (Subject("amd_1", "evt_1:ledger"),)
    assert call.status == "ok" and call.error is None
    assert call.duration_us >= 2000 and call.started_at.tzinfo is not None
    assert call.request_excerpt == '{"document":"inv_1"}' and call.request_bytes == 10
    assert current_subjects() == ()  # the delivery's scope ended with it


def test_the_deliverys_subjects_win_over_the_adapters_own() -> None:
    calls = Calls()
    with recorded(calls, "drop", Channel.FILE, "append", "/x", [Subject("c0", "k0")]):
        pass
    with (delivering([Subject("c1", "k1"), Subject("c2", "k2")]),
          recorded(calls, "drop", Channel.FILE, "append", "/x", [Subject("c0", "k0")])):
        pass
    assert [c.subjects for c in calls] == [(Subject("c0", "k0"),),
                                           (Subject("c1", "k1"), Subject("c2", "k2"))]


@pytest.mark.parametrize(("error", "status", "named"), [
    (TransientError("x"), "transient", "transient:target_unavailable"),
    (PermanentError("x", exception_class=ExceptionClass.CLOSED_PERIOD), "permanent",
     "permanent:closed_period"),
    (KeyError("secret detail"), "error", "KeyError"),
])
def test_a_failed_call_is_recorded_with_its_class_and_the_error_goes_on(
        error: Exception, status: str, named: str) -> None:
    calls = Calls()
    with pytest.raises(type(error)), recorded(calls, "s", Channel.HTTP, "GET", "/v1/x"):
        raise error
    assert (calls[0].status, calls[0].error) == (status, named)
    assert "secret detail" not in repr(calls[0])


def test_an_http_status_set_by_the_adapter_stays_when_it_raises() -> None:
    calls = Calls()
    with (pytest.raises(PermanentError),
          recorded(calls, "stripe", Channel.HTTP, "GET", "/v1/invoices/in_x") as exchange):
        exchange.status, exchange.error = "404", "invalid_request_error"
        raise PermanentError("404", exception_class=ExceptionClass.MASTER_DATA_MISMATCH)
    assert (calls[0].status, calls[0].error) == ("404", "invalid_request_error")


def test_the_subjects_do_not_leak_into_other_threads() -> None:
    seen: list[tuple[Subject, ...]] = []
    with delivering([Subject("amd_1")]):
        worker = threading.Thread(target=lambda: seen.append(current_subjects()))
        worker.start()
        worker.join()
        assert current_subjects() == (Subject("amd_1"),)
    assert seen == [()]


def test_the_retention_is_configured_in_days_and_must_be_positive() -> None:
    base = {"ownership": {d.value: "billing" for d in BusinessDomain}}
    assert parse_config(base, Path(".")).calls.retention_days == 2557  # seven years
    assert parse_config({**base, "calls": {"retention_days": 90}},
                        Path(".")).calls.retention_days == 90
    for bad in (0, -1, "forever"):
        with pytest.raises(ConfigError, match="retention_days"):
            parse_config({**base, "calls": {"retention_days": bad}}, Path("."))


def test_a_file_drop_write_is_one_call_for_every_posting_it_carries(tmp_path: Path) -> None:
    calls = Calls()
    drop = FileDropLedger("drop", tmp_path, recorder=calls)
    first = DeliveryContext("evt_1:drop", "evt_1", "amd_1")
    second = DeliveryContext("evt_2:drop", "evt_2", "con_9")
    postings = [Posting(InvoiceIssued(invoice("inv_1", ["100.00"])), first),
                Posting(InvoiceIssued(invoice("inv_2", ["50.00"])), second)]
    drop.post_batch(postings)
    drop.post_batch(postings[:1])  # a repeat writes nothing, and is a call all the same
    written, repeated = calls
    assert (written.system, written.channel, written.method) == ("drop", "file", "append")
    assert written.endpoint == str(tmp_path / "drop.jsonl")
    assert written.subjects == (Subject("amd_1", "evt_1:drop"), Subject("con_9", "evt_2:drop"))
    assert written.response_excerpt == '{"written":2,"postings":2}'
    assert written.request_bytes == (tmp_path / "drop.jsonl").stat().st_size
    assert repeated.response_excerpt == '{"written":0,"postings":1}'
    assert repeated.subjects == (Subject("amd_1", "evt_1:drop"),)
