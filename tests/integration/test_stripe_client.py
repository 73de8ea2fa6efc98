"""The Stripe client against a real localstripe (plumbing: paging, fetch, error mapping) and
against a local stub for what localstripe never answers (429, 5xx)."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import pytest

from finsync.connectors.stripe.client import (
    CREDIT_NOTES_OF_INTENT,
    INVOICE_PAYMENTS_OF_INTENT,
    ClientSettings,
    StripeClient,
)
from finsync.domain.errors import PermanentError, TransientError
from tests.stripekit import API_KEY, Localstripe, free_port


def client(base_url: str) -> StripeClient:
    return StripeClient("stripe", ClientSettings(API_KEY, base_url, timeout_s=5))


def test_events_after_pages_oldest_first_without_repeats(localstripe: Localstripe) -> None:
    localstripe.reset(None)
    localstripe.subscribe(2, 1_000)
    expected = [e["id"] for e in localstripe.events()]
    stripe, cursor, seen = client(localstripe.base_url), None, []
    for _ in range(20):
        page = stripe.events_after(cursor, 2)
        seen += [e.source_event_id for e in page.events]
        cursor = page.cursor
        if not page.has_more:
            break
    assert seen == expected and len(seen) >= 7
    assert stripe.events_after(cursor, 2).events == ()


def test_fetch_completes_an_invoice_and_expands_a_refund(localstripe: Localstripe) -> None:
    localstripe.reset(None)
    sub = localstripe.subscribe(4, 500)
    stripe = client(localstripe.base_url)
    invoice = stripe.fetch("invoice", sub["latest_invoice"])
    assert invoice["lines"]["has_more"] is False and invoice["total"] == 2_000
    intent = next(e for e in localstripe.events()
                  if e["type"] == "payment_intent.succeeded")["data"]["object"]
    refund = localstripe.call("POST", "/v1/refunds", {"payment_intent": intent["id"],
                                                      "amount": 500})
    fetched = stripe.fetch("refund", refund["id"])
    assert fetched["amount"] == 500


def test_an_unknown_object_is_a_permanent_error_with_stripes_message(
        localstripe: Localstripe) -> None:
    with pytest.raises(PermanentError) as caught:
        client(localstripe.base_url).fetch("invoice", "in_missing")
    assert "404" in str(caught.value) and "in_missing" in str(caught.value)


def test_a_wrong_key_is_permanent_and_nothing_listening_is_transient(
        localstripe: Localstripe) -> None:
    bad = StripeClient("stripe", ClientSettings("not_a_key", localstripe.base_url))
    with pytest.raises(PermanentError):
        bad.fetch("customer", "cus_x")
    with pytest.raises(TransientError):
        client(f"http://127.0.0.1:{free_port()}").fetch("customer", "cus_x")


class _Stub(BaseHTTPRequestHandler):
    status = 429

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.send_header("Retry-After", "7")
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"error": {"message": "Too many requests"}}')

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def stub() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("status", [429, 503])
def test_rate_limits_and_server_errors_are_transient_with_retry_after(
        stub: str, status: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_Stub, "status", status)
    with pytest.raises(TransientError) as caught:
        client(stub).fetch("customer", "cus_1")
    assert caught.value.retry_after_s == 7 and "Too many requests" in str(caught.value)


# -- lists fetched beside a payment event (localstripe has no /v1/invoice_payments) ------------

class _Lists(BaseHTTPRequestHandler):
    """Stripe's list answers, in the current shape: in_1 and in_2 paid by pi_1 (two pages),
    a credit note on in_2."""

    asked: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).asked.append(self.path)
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/v1/invoice_payments" and "starting_after" not in query:
            page = {"data": [{"id": "inpay_1", "invoice": "in_1"}], "has_more": True}
        elif url.path == "/v1/invoice_payments":
            page = {"data": [{"id": "inpay_2", "invoice": "in_2"}], "has_more": False}
        elif url.path == "/v1/credit_notes" and query.get("invoice") == "in_2":
            page = {"data": [{"id": "cn_1", "invoice": "in_2"}], "has_more": False}
        else:
            page = {"data": [], "has_more": False}
        body = json.dumps({"object": "list", "url": url.path, **page}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def lists() -> Iterator[str]:
    _Lists.asked = []
    server = HTTPServer(("127.0.0.1", 0), _Lists)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_the_invoice_payments_of_an_intent_come_whole_with_their_invoices(lists: str) -> None:
    found = client(lists).fetch(INVOICE_PAYMENTS_OF_INTENT, "pi_1")
    assert found == {"object": "list", "has_more": False, "url": "/v1/invoice_payments",
                     "data": [{"id": "inpay_1", "invoice": "in_1"},
                              {"id": "inpay_2", "invoice": "in_2"}]}
    first = urllib.parse.urlsplit(_Lists.asked[0])
    assert first.path == "/v1/invoice_payments"
    assert urllib.parse.parse_qsl(first.query) == [
        ("payment[type]", "payment_intent"), ("payment[payment_intent]", "pi_1"),
        ("expand[]", "data.invoice"), ("limit", "100")]


def test_the_credit_notes_of_what_an_intent_paid(lists: str) -> None:
    found = client(lists).fetch(CREDIT_NOTES_OF_INTENT, "pi_1")
    assert [n["id"] for n in found["data"]] == ["cn_1"]  # type: ignore[index]
    asked = [urllib.parse.urlsplit(p) for p in _Lists.asked]
    assert [(a.path, dict(urllib.parse.parse_qsl(a.query)).get("invoice")) for a in asked
            if a.path == "/v1/credit_notes"] == [("/v1/credit_notes", "in_1"),
                                                 ("/v1/credit_notes", "in_2")]


# -- writes (the subscription platform's): a stub answers what localstripe never does ------------

class _Writes(BaseHTTPRequestHandler):
    status = 400
    answer = b'{"error": {"type": "invalid_request_error", "code": "resource_missing", ' \
             b'"message": "No such price: \'price_x\'"}}'
    seen: ClassVar[list[tuple[str, str, str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).seen.append((self.command, self.headers.get("Idempotency-Key", ""),
                                self.headers.get("Content-Type", ""), body))
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(self.answer if self.status >= 400 else b'{"id": "sub_1"}')

    def do_DELETE(self) -> None:
        self.do_POST()

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def writes() -> Iterator[str]:
    _Writes.seen = []
    server = HTTPServer(("127.0.0.1", 0), _Writes)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_a_write_is_form_encoded_under_its_idempotency_key(
        writes: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_Writes, "status", 200)
    answer = client(writes).send("POST", "/v1/subscriptions/sub_1",
                                 [("items[0][id]", "si_1"), ("items[0][quantity]", "800"),
                                  ("proration_behavior", "always_invoice")], "finsync-k1")
    assert answer == {"id": "sub_1"}
    assert _Writes.seen == [("POST", "finsync-k1", "application/x-www-form-urlencoded",
                             b"items%5B0%5D%5Bid%5D=si_1&items%5B0%5D%5Bquantity%5D=800"
                             b"&proration_behavior=always_invoice")]


def test_a_refused_write_is_master_data_with_stripes_code(writes: str) -> None:
    with pytest.raises(PermanentError) as caught:
        client(writes).send("POST", "/v1/subscriptions", [("customer", "cus_1")], "k")
    assert caught.value.exception_class.value == "master_data_mismatch"
    assert "[resource_missing]" in str(caught.value) and "price_x" in str(caught.value)
    assert caught.value.code == "resource_missing"


@pytest.mark.parametrize("status", [401, 403, 409, 429, 500, 503])
def test_a_write_refused_by_the_connection_or_a_concurrent_copy_is_transient(
        writes: str, status: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_Writes, "status", status)
    with pytest.raises(TransientError):
        client(writes).send("DELETE", "/v1/subscriptions/sub_1", [("prorate", "true")], "k")
