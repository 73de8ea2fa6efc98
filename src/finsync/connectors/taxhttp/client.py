"""A tax engine over HTTP (`finsync tax serve`, or any engine speaking `wire`) behind the
tax port.

Rules:
- Every call has a timeout (`timeout_s`) and a bearer token; answers are read up to
  `wire.BODY_MAX_BYTES` and checked before use (`check_result` on a quote).
- `quote`: connection refused, a timeout, an answer cut off or not HTTP, a 5xx, an answer
  that cannot be read, and a 4xx that is about the connection rather than the document
  (401, 403, 404, 405, 413: a wrong token, path or size) are a `TaxUnavailableError`
  (asking again, or once the configuration is fixed, may work); any other 4xx is a
  `TaxRefusedError` with the engine's code (`tax_http_<status>` when it gives none).
- Commits: the same failures are a `TransientError` (with the class the engine gives, e.g.
  `sequencing_error` for a void before its invoice); a refusal is a `TaxHttpRefusedError`,
  a `PermanentError` of the engine's class (`tax_failure` by default) with its code.
- `find_receipt` answers None on 404; failures as for commits.
- Each request goes to the call log as an `http` call.
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from finsync.connectors.calls import NO_RECORDER, CallRecorder, Channel, Exchange, recorded
from finsync.connectors.ports import DeliveryContext, Receipt
from finsync.connectors.taxhttp import wire
from finsync.domain.codec import JsonObject
from finsync.domain.errors import (
    ExceptionClass,
    MappingError,
    PermanentError,
    TransientError,
)
from finsync.domain.invoice import CreditMemo, Invoice
from finsync.domain.tax import (
    TaxRefusedError,
    TaxRequest,
    TaxResult,
    TaxUnavailableError,
    check_result,
)

T = TypeVar("T")


class TaxHttpRefusedError(PermanentError):
    """The tax engine refused a commit; `code` is its rule's."""

    def __init__(self, message: str, code: str, exception_class: ExceptionClass) -> None:
        super().__init__(f"{code}: {message}", exception_class=exception_class)
        self.code = code


@dataclass(frozen=True, slots=True)
class _Failed:
    """A call that got no usable answer: `status` (None: no HTTP answer at all)."""

    status: int | None
    message: str
    error: wire.WireError | None = None


class HttpTax:
    def __init__(self, system: str, url: str, token: str, timeout_s: float = 10.0, *,
                 recorder: CallRecorder = NO_RECORDER) -> None:
        self.system, self._url, self._token = system, url.rstrip("/"), token
        self._timeout_s, self._recorder = timeout_s, recorder

    def quote(self, request: TaxRequest) -> TaxResult:
        answer = self._call("POST", wire.QUOTE, wire.document_json(request))
        if isinstance(answer, _Failed):
            if _refused(answer):
                code = answer.error.code if answer.error else f"tax_http_{answer.status}"
                raise TaxRefusedError(f"tax engine refused: {answer.message}", code=code)
            raise TaxUnavailableError(f"tax engine unavailable: {answer.message}")
        try:
            result = wire.document_from(TaxResult, answer, "result")
        except MappingError as exc:
            raise TaxUnavailableError(f"tax engine's answer unreadable: {exc}") from exc
        return check_result(request, result)

    def commit_invoice(self, invoice: Invoice, ctx: DeliveryContext) -> Receipt:
        return self._commit(wire.COMMIT_INVOICE, wire.commit_json(ctx.delivery_key, invoice))

    def commit_credit_memo(self, memo: CreditMemo, ctx: DeliveryContext) -> Receipt:
        return self._commit(wire.COMMIT_CREDIT_MEMO, wire.commit_json(ctx.delivery_key, memo))

    def find_receipt(self, key: str) -> Receipt | None:
        path = f"{wire.RECEIPTS}/{urllib.parse.quote(key, safe='')}"
        answer = self._call("GET", path, None)
        if isinstance(answer, _Failed) and answer.status == 404:
            return None
        return self._receipt(answer)

    def _commit(self, path: str, body: bytes) -> Receipt:
        return self._receipt(self._call("POST", path, body))

    @staticmethod
    def _receipt(answer: JsonObject | _Failed) -> Receipt:
        if isinstance(answer, _Failed):
            raise _commit_error(answer)
        try:
            return wire.receipt_from(answer)
        except MappingError as exc:
            raise TransientError(f"tax engine's receipt unreadable: {exc}") from exc

    def _call(self, method: str, path: str, body: bytes | None) -> JsonObject | _Failed:
        request = urllib.request.Request(
            self._url + path, data=body, method=method,
            headers={"Authorization": f"Bearer {self._token}",
                     "Content-Type": "application/json", "Accept": "application/json"})
        with recorded(self._recorder, self.system, Channel.HTTP, method, path) as exchange:
            if body is not None:
                exchange.request(None, len(body))
            return self._send(request, path, exchange)

    def _send(self, request: urllib.request.Request, path: str,
              exchange: Exchange) -> JsonObject | _Failed:
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                body = _bounded(response.read)
                exchange.status = str(response.status)
        except urllib.error.HTTPError as exc:
            answer = _bounded(exc.read)
            exchange.status = str(exc.code)
            error = wire.error_from(answer)
            exchange.error = error.code if error else None
            return _Failed(exc.code, f"{exc.code} on {path}: "
                                     f"{error.message if error else exc.reason}", error)
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError,
                http.client.HTTPException, ValueError) as exc:
            # HTTPException: an answer cut off mid-way (IncompleteRead) or a server that is
            # no HTTP server (BadStatusLine); ValueError: a URL urllib cannot use.
            exchange.status, exchange.error = "unreachable", exc.__class__.__name__
            return _Failed(None, f"{self._url} unreachable: {exc}")
        exchange.response(None, len(body))
        try:
            return wire.parse(body, path)
        except MappingError as exc:
            return _Failed(None, f"unreadable answer on {path}: {exc}")


def _bounded(read: Callable[[int], bytes]) -> bytes:
    """At most one byte over the limit, which `wire.parse` then refuses by name."""
    try:
        return read(wire.BODY_MAX_BYTES + 1)
    except (OSError, http.client.HTTPException):
        return b""


def _commit_error(failed: _Failed) -> TransientError | PermanentError:
    error = failed.error
    klass = _class(error.exception_class) if error else ExceptionClass.TAX_FAILURE
    if _refused(failed):
        code = error.code if error else f"tax_http_{failed.status}"
        return TaxHttpRefusedError(failed.message, code, klass)
    transient = error is not None and error.kind == wire.TRANSIENT
    return TransientError(f"tax engine: {failed.message}",
                          exception_class=klass if transient else
                          ExceptionClass.TARGET_UNAVAILABLE)


# Client errors that say nothing about the document: a wrong token, a wrong path, a body
# over the engine's limit. They are the connection's (configuration) and are retried, so a
# fixed token releases what was held meanwhile, rather than refusals of master data.
_NOT_THE_DOCUMENTS = frozenset({401, 403, 404, 405, 413})


def _refused(failed: _Failed) -> bool:
    """Whether the engine refused the document itself (a 4xx about it)."""
    status = failed.status
    return status is not None and 400 <= status < 500 and status not in _NOT_THE_DOCUMENTS


def _class(value: str) -> ExceptionClass:
    try:
        return ExceptionClass(value)
    except ValueError:
        return ExceptionClass.TAX_FAILURE
