"""The Stripe client against a real localstripe (plumbing: paging, fetch, error mapping) and
against a local stub for what localstripe never answers (429, 5xx)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from finsync.connectors.stripe.client import ClientSettings, StripeClient
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
