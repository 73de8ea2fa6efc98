"""The tax engine's own HTTP API (`finsync tax serve`): any tax port, over HTTP.

Rules:
- `POST /v1/quote` (a `TaxRequest`) answers the `TaxResult`; `POST /v1/invoices/commit` and
  `POST /v1/credit_memos/commit` (`{"key", "document"}`; a `void` memo voids its invoice)
  answer the receipt; `GET /v1/receipts/{key}` the receipt kept under a key (404 if none);
  `GET /healthz` is open, every other route needs `Authorization: Bearer <token>` (compared
  in constant time; 401 `not_authenticated`).
- Bodies are bounded before they are parsed (`wire.BODY_MAX_BYTES`: 413 `body_too_large`,
  and the JSON's depth and size); a body that is no such message is 400 with its code.
- Errors travel as `wire.WireError`: a refused quote 422, an unavailable engine or a
  transient commit failure 503, a refused commit 409, each with its code and class.
- The port is called outside the event loop (its calls block on the database).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from finsync.connectors.ports import DeliveryContext, TaxPort
from finsync.connectors.taxhttp import wire
from finsync.domain.errors import (
    ExceptionClass,
    MappingError,
    PermanentError,
    TransientError,
)
from finsync.domain.invoice import CreditMemo, Invoice
from finsync.domain.tax import TaxRefusedError, TaxRequest, TaxUnavailableError

_JSON = "application/json"
_TAX = ExceptionClass.TAX_FAILURE.value
Handler = Callable[[Request], Awaitable[Response]]


def _answer(body: bytes, status: int = 200) -> Response:
    return Response(body, status, media_type=_JSON)


def _error(status: int, code: str, message: str, kind: str = wire.REFUSED,
           exception_class: str = _TAX) -> Response:
    return _answer(wire.error_json(wire.WireError(code, message, kind, exception_class)),
                   status)


async def _body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > wire.BODY_MAX_BYTES:
        raise MappingError(f"body of {declared} bytes is over the limit of "
                           f"{wire.BODY_MAX_BYTES} bytes", code="body_too_large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > wire.BODY_MAX_BYTES:
            raise MappingError(f"body over the limit of {wire.BODY_MAX_BYTES} bytes",
                               code="body_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def _failure(exc: Exception) -> Response:
    """The wire answer of what a port call raised; anything else is a 500."""
    if isinstance(exc, MappingError):
        status = 413 if exc.code == "body_too_large" else 400
        return _error(status, exc.code, str(exc))
    if isinstance(exc, TaxRefusedError):
        return _error(wire.STATUS[wire.REFUSED], exc.code, str(exc))
    if isinstance(exc, TaxUnavailableError):
        return _error(wire.STATUS[wire.UNAVAILABLE], exc.code, str(exc), wire.UNAVAILABLE)
    if isinstance(exc, TransientError):
        return _error(wire.STATUS[wire.TRANSIENT], exc.code, str(exc), wire.TRANSIENT,
                      exc.exception_class.value)
    if isinstance(exc, PermanentError):
        return _error(wire.STATUS[wire.PERMANENT], exc.code, str(exc), wire.PERMANENT,
                      exc.exception_class.value)
    raise exc


def create_tax_app(port: TaxPort, token: str) -> Starlette:
    """The HTTP face of `port`, for callers that hold `token`."""
    if not token:
        raise ValueError("the tax engine's API needs a bearer token")
    expected = f"Bearer {token}".encode()

    def guarded(handler: Handler) -> Handler:
        async def guard(request: Request) -> Response:
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return _error(401, "not_authenticated", "a valid bearer token is needed")
            try:
                return await handler(request)
            except (MappingError, TaxRefusedError, TaxUnavailableError, TransientError,
                    PermanentError) as exc:
                return _failure(exc)
        return guard

    async def quote(request: Request) -> Response:
        asked = wire.document_from(TaxRequest, wire.parse(await _body(request), "quote"),
                                   "request")
        result = await run_in_threadpool(port.quote, asked)
        return _answer(wire.document_json(result))

    async def commit_invoice(request: Request) -> Response:
        key, invoice = wire.commit_from(Invoice, wire.parse(await _body(request), "commit"))
        receipt = await run_in_threadpool(port.commit_invoice, invoice, _context(key))
        return _answer(wire.receipt_json(receipt))

    async def commit_credit_memo(request: Request) -> Response:
        key, memo = wire.commit_from(CreditMemo, wire.parse(await _body(request), "commit"))
        receipt = await run_in_threadpool(port.commit_credit_memo, memo, _context(key))
        return _answer(wire.receipt_json(receipt))

    async def receipt(request: Request) -> Response:
        key = str(request.path_params["key"])
        if len(key) > wire.KEY_MAX_CHARS:
            return _error(400, "key_too_long", f"a key is at most {wire.KEY_MAX_CHARS} "
                                               "characters")
        found = await run_in_threadpool(port.find_receipt, key)
        if found is None:
            return _error(404, "unknown_receipt", "no receipt under that key")
        return _answer(wire.receipt_json(found))

    async def healthz(_request: Request) -> Response:
        return _answer(b'{"status":"ok"}')

    return Starlette(routes=[
        Route(wire.QUOTE, guarded(quote), methods=["POST"]),
        Route(wire.COMMIT_INVOICE, guarded(commit_invoice), methods=["POST"]),
        Route(wire.COMMIT_CREDIT_MEMO, guarded(commit_credit_memo), methods=["POST"]),
        Route(wire.RECEIPTS + "/{key:path}", guarded(receipt), methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ])


def _context(key: str) -> DeliveryContext:
    # The caller's delivery key is the idempotency key; the ids only label the call log.
    return DeliveryContext(key, key, key)
