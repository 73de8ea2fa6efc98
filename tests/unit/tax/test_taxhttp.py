"""The tax engine over HTTP: an engine that stops and starts again, refusals, limits."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from finsync.connectors.embedded.tax import EmbeddedTax
from finsync.connectors.ports import DeliveryContext
from finsync.connectors.taxhttp import wire
from finsync.connectors.taxhttp.client import HttpTax
from finsync.connectors.taxhttp.server import create_tax_app
from finsync.domain.errors import ExceptionClass, PermanentError, TransientError
from finsync.domain.money import Money
from finsync.domain.tax import TaxUnavailableError
from finsync.systems.tax.config_file import load_tax_rules
from finsync.systems.tax.migrate import upgrade
from finsync.systems.tax.service import TaxService
from tests.unit.tax.httpkit import free_port, running
from tests.unit.tax.support import invoice_of, line, request

TOKEN = "test-tax-token"
NY = request("US", "NY", line("1000.00"), on=date(2026, 3, 2))


@pytest.fixture
def app(engine: Engine) -> Starlette:
    upgrade(engine)
    service = TaxService(engine, lambda: datetime(2026, 3, 31, tzinfo=UTC))
    service.load_rules(load_tax_rules())
    return create_tax_app(EmbeddedTax("tax", service), TOKEN)


def ctx(key: str) -> DeliveryContext:
    return DeliveryContext(key, key, key)


def test_an_engine_stopped_then_restarted(app: Starlette) -> None:
    port = free_port()
    client = HttpTax("tax", f"http://127.0.0.1:{port}", TOKEN, timeout_s=2.0)
    with running(app, port):
        invoice = invoice_of(NY, client.quote(NY))
    # Stopped: connection refused.
    with pytest.raises(TaxUnavailableError):
        client.quote(NY)
    with pytest.raises(TransientError) as down:
        client.commit_invoice(invoice, ctx("evt_1"))
    assert down.value.exception_class is ExceptionClass.TARGET_UNAVAILABLE
    with running(app, port):  # restarted: the same request now goes through
        assert client.quote(NY).lines[0].tax == Money.of("40.00", "USD")
        assert client.commit_invoice(invoice, ctx("evt_1")).detail["status"] == "committed"


def test_a_wrong_token_holds_what_it_touches_until_the_token_is_fixed(app: Starlette) -> None:
    # A wrong token says nothing about the document: the quote is unavailable (the invoice
    # held as transient, retried), the commit retried; with the right token both go through.
    with running(app) as url:
        client = HttpTax("tax", url, "not-the-token", timeout_s=2.0)
        with pytest.raises(TaxUnavailableError, match=r"bearer token"):
            client.quote(NY)
        invoice = invoice_of(NY, HttpTax("tax", url, TOKEN).quote(NY))
        with pytest.raises(TransientError) as retried:
            client.commit_invoice(invoice, ctx("evt_1"))
        assert not isinstance(retried.value, PermanentError)
        assert HttpTax("tax", url, TOKEN).commit_invoice(invoice, ctx("evt_1")).external_id


def _post(url: str, body: bytes, token: str = TOKEN) -> tuple[int, dict[str, object]]:
    ask = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Authorization": f"Bearer {token}",
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(ask, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_body_declared_over_the_limit_is_refused_before_it_is_read(app: Starlette) -> None:
    # Only the headers are sent: the engine answers from Content-Length alone. (Sending the
    # megabyte too races the answer: the engine closes the connection unread, and the
    # sender may get a broken pipe before it reads the 413.)
    with running(app) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(f"POST {wire.QUOTE} HTTP/1.1\r\nHost: {host}\r\n"
                         f"Authorization: Bearer {TOKEN}\r\n"
                         f"Content-Type: application/json\r\n"
                         f"Content-Length: {wire.BODY_MAX_BYTES + 1}\r\n"
                         f"Connection: close\r\n\r\n".encode())
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert json.loads(body)["error"]["code"] == "body_too_large"


@pytest.mark.parametrize(("body", "status", "code"), [
    (b"[" * 100 + b"]" * 100, 400, "json_too_deep"),
    (b"not json", 400, "mapping_error"),
    (b'{"document_id": "inv_1"}', 400, "mapping_error"),  # not a whole request
])
def test_bodies_are_bounded_and_checked(app: Starlette, body: bytes, status: int,
                                        code: str) -> None:
    with running(app) as url:
        answered, data = _post(url + wire.QUOTE, body)
    assert answered == status
    assert data["error"]["code"] == code  # type: ignore[index]


def test_a_5xx_is_unavailable_and_a_silent_engine_times_out() -> None:
    def broken(_request: Request) -> Response:
        return Response(b"upstream exploded", 502)

    failing = Starlette(routes=[Route(wire.QUOTE, broken, methods=["POST"])])
    with running(failing) as url, pytest.raises(TaxUnavailableError, match="502"):
        HttpTax("tax", url, TOKEN).quote(NY)
    # A socket that accepts the connection and never answers: the timeout ends the wait.
    with silent_listener() as url, pytest.raises(TaxUnavailableError, match="timed out"):
        HttpTax("tax", url, TOKEN, timeout_s=0.3).quote(NY)


@contextmanager
def silent_listener() -> Iterator[str]:
    """A socket that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def test_find_receipt_over_http(app: Starlette) -> None:
    with running(app) as url:
        client = HttpTax("tax", url, TOKEN)
        assert client.find_receipt("evt/1") is None
        receipt = client.commit_invoice(invoice_of(NY, client.quote(NY)), ctx("evt/1"))
        found = client.find_receipt("evt/1")  # the same answer, now a replay
        assert found is not None
        assert (found.external_id, found.references, found.detail["status"]) == (
            receipt.external_id, receipt.references, "committed")
        assert found.detail["replayed"] == "true"
