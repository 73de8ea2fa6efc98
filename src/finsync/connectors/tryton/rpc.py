"""A JSON-RPC client for trytond, and the translation of its failures into finsync's errors.

Rules:
- One session per client: `common.db.login` once, then `Authorization: Session
  base64(login:user_id:token)` on every call (basic auth would hash the password per call).
  An expired session (HTTP 401/403) logs in again once and repeats the call: the server
  refused it before doing anything.
- The context dict is always the last parameter of a model call.
- Decimals and dates travel as Tryton's tagged objects, never as floats or strings.
- What a person can do decides the error: a closed or missing period is `closed_period`;
  an unbalanced move is `mapping_error` (finsync built it, as the embedded ledger says);
  any other refusal (a required party, a bad account, a domain) is `master_data_mismatch`.
  Concurrency conflicts, 429, 5xx, timeouts and lost connections are transient: whether a
  write happened is then unknown, so the caller reads back by key before writing again.
- A client is not shared between threads: one per worker.
- Every request on the wire goes to the call log (`connectors.calls`): the RPC method, the
  URL, the HTTP status (and Tryton's error kind), the duration and redacted excerpts; the
  login's parameters and answer (password, session token) are never excerpted.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import threading
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from finsync.connectors.calls import NO_RECORDER, CallRecorder, Channel, Exchange, recorded
from finsync.domain.errors import ExceptionClass, PermanentError, TransientError

Context = Mapping[str, Any]

# Tryton's English texts for a period that refuses the move (checked in the order given).
_CLOSED_PERIOD_TEXTS = (
    'for field "Period"',  # DomainValidationError: a move in a closed period
    "closed journal-period",  # lines in the journal of a closed period
    "journal-period in closed period",  # the first move of a journal in a closed period
    "you must reopen the period",  # PeriodNotFoundError: no open period for the date
    "no period defined",  # PeriodNotFoundError of older series
)
_UNBALANCED_TEXTS = ("you must balance all its lines",)


def _encode(value: Any) -> Any:
    if isinstance(value, Decimal):
        return {"__class__": "Decimal", "decimal": str(value)}
    if isinstance(value, datetime):
        utc = value.astimezone(UTC) if value.tzinfo else value
        return {"__class__": "datetime", "year": utc.year, "month": utc.month, "day": utc.day,
                "hour": utc.hour, "minute": utc.minute, "second": utc.second,
                "microsecond": utc.microsecond}
    if isinstance(value, date):
        return {"__class__": "date", "year": value.year, "month": value.month,
                "day": value.day}
    if isinstance(value, bytes):
        return {"__class__": "bytes", "base64": base64.b64encode(value).decode()}
    raise TypeError(f"cannot send {type(value).__name__} to Tryton")


def _decode(obj: dict[str, Any]) -> Any:
    kind = obj.get("__class__")
    if kind == "Decimal":
        return Decimal(obj["decimal"])
    if kind == "date":
        return date(obj["year"], obj["month"], obj["day"])
    if kind == "datetime":  # Tryton keeps UTC without a zone
        return datetime(obj["year"], obj["month"], obj["day"], obj["hour"], obj["minute"],
                        obj["second"], obj.get("microsecond", 0), tzinfo=UTC)
    if kind == "time":
        return time(obj["hour"], obj["minute"], obj["second"], obj.get("microsecond", 0))
    if kind == "timedelta":
        return timedelta(seconds=obj["seconds"])
    if kind == "bytes":
        return base64.b64decode(obj["base64"])
    return obj


def dumps(value: Any) -> bytes:
    return json.dumps(value, default=_encode, separators=(",", ":")).encode()


def loads(body: bytes) -> Any:
    return json.loads(body, object_hook=_decode)


def classify(kind: str, args: Any) -> PermanentError | TransientError:
    """The finsync error for one Tryton error answer `[kind, args]`."""
    message = _message(args)
    if kind == "ConcurrencyException":
        return TransientError(f"Tryton: {message}")
    if kind in ("UserError", "UserWarning"):
        lowered = message.lower()
        if any(text.lower() in lowered for text in _CLOSED_PERIOD_TEXTS):
            klass = ExceptionClass.CLOSED_PERIOD
        elif any(text in lowered for text in _UNBALANCED_TEXTS):
            klass = ExceptionClass.MAPPING_ERROR
        else:
            klass = ExceptionClass.MASTER_DATA_MISMATCH
        return PermanentError(f"Tryton {kind}: {message}", exception_class=klass)
    if kind == "LoginException":
        return PermanentError(f"Tryton login refused: {message}",
                              exception_class=ExceptionClass.TARGET_UNAVAILABLE)
    # An unexpected server exception: the server says what, not whether a retry helps.
    return TransientError(f"Tryton server error: {kind}: {message}"[:2000])


def _error_kind(answer: Any) -> str | None:
    """Tryton's kind of error in an answer (its message may quote a party: not kept)."""
    error = answer.get("error") if isinstance(answer, dict) else None
    if error is None:
        return None
    return str(error[0])[:64] if isinstance(error, list) and error else "error"


def _message(args: Any) -> str:
    if isinstance(args, list | tuple):
        parts = [str(a) for a in args[:2] if isinstance(a, str) and a]
        return " — ".join(parts) if parts else json.dumps(args, default=str)[:500]
    return str(args)


class TrytonClient:
    """Calls to one Tryton database as one user."""

    def __init__(self, url: str, database: str, user: str, password: str,
                 timeout_s: float = 30.0, language: str = "en", *,
                 recorder: CallRecorder = NO_RECORDER, system: str = "tryton") -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self._scheme, self._host = parts.scheme, parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._path = f"{parts.path.rstrip('/')}/{database}/rpc/"
        self.database, self.user = database, user
        self._password, self._language, self.timeout_s = password, language, timeout_s
        self._session: str | None = None
        self.user_id = 0
        self._conn: http.client.HTTPConnection | None = None
        self._ids = 0
        self._lock = threading.Lock()
        self._recorder, self.system = recorder, system
        self._endpoint = f"{self._scheme}://{self._host}:{self._port}{self._path}"

    # -- model calls -----------------------------------------------------------------

    def model(self, model: str, method: str, *args: Any, context: Context | None = None
              ) -> Any:
        """`model.<model>.<method>(*args, context)`: the context always goes last."""
        return self.call(f"model.{model}.{method}", *args, dict(context or {}))

    def call(self, method: str, *params: Any) -> Any:
        with self._lock:
            if self._session is None:
                self._login()
            status, answer = self._post(method, list(params), self._session)
            if status in (401, 403):  # the session expired: log in once more
                self._login()
                status, answer = self._post(method, list(params), self._session)
            return self._result(method, status, answer)

    def close(self) -> None:
        with self._lock:
            self._drop_connection()

    def __enter__(self) -> TrytonClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- protocol --------------------------------------------------------------------

    def _login(self) -> None:
        self._session = None
        status, answer = self._post("common.db.login",
                                    [self.user, {"password": self._password},
                                     self._language], None)
        result = self._result("common.db.login", status, answer)
        user_id, token = result[0], result[1]
        self.user_id = int(user_id)
        raw = f"{self.user}:{user_id}:{token}".encode()
        self._session = base64.b64encode(raw).decode()

    def _result(self, method: str, status: int, answer: Any) -> Any:
        if status == 429:
            raise TransientError(f"Tryton rate-limited {method} (HTTP 429)", retry_after_s=60)
        if status >= 500:
            raise TransientError(f"Tryton answered HTTP {status} to {method}")
        if status != 200 or not isinstance(answer, dict):
            raise PermanentError(f"Tryton answered HTTP {status} to {method}",
                                 exception_class=ExceptionClass.TARGET_UNAVAILABLE)
        if answer.get("error") is not None:
            error = answer["error"]
            kind, args = (error[0], error[1]) if isinstance(error, list) and error else \
                (str(error), None)
            raise classify(str(kind), args)
        return answer.get("result")

    def _post(self, method: str, params: list[Any], session: str | None
              ) -> tuple[int, Any]:
        with recorded(self._recorder, self.system, Channel.JSON_RPC, method,
                      self._endpoint) as exchange:
            return self._exchange(method, params, session, exchange)

    def _exchange(self, method: str, params: list[Any], session: str | None,
                  exchange: Exchange) -> tuple[int, Any]:
        self._ids += 1
        body = dumps({"id": self._ids, "method": method, "params": params})
        secret = method == "common.db.login"  # the password out, the session token back
        exchange.request(None if secret else params, len(body))
        headers = {"Content-Type": "application/json", "Connection": "keep-alive"}
        if session is not None:
            headers["Authorization"] = f"Session {session}"
        response: http.client.HTTPResponse | None = None
        try:
            conn = self._connection()
            conn.request("POST", self._path, body, headers)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            # Refused, reset, timed out or cut mid-answer: the call may or may not have run.
            if response is not None:  # cut mid-answer: it holds the socket open otherwise
                response.close()
            self._drop_connection()
            exchange.status, exchange.error = "unreachable", exc.__class__.__name__
            raise TransientError(f"Tryton unreachable during {method}: "
                                 f"{exc.__class__.__name__}: {exc}") from exc
        if response.getheader("Connection", "").lower() == "close":
            self._drop_connection()
        exchange.status = str(response.status)
        try:
            answer = loads(data) if data else None
        except ValueError:
            answer = None
        exchange.response(None if secret else answer, len(data))
        exchange.error = _error_kind(answer)
        return response.status, answer

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            kind = http.client.HTTPSConnection if self._scheme == "https" else \
                http.client.HTTPConnection
            self._conn = kind(self._host, self._port, timeout=self.timeout_s)
            self._conn.connect()
            if self._conn.sock is not None:
                self._conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
