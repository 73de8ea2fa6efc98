"""The record of every call a connector makes to an external system (or, for the embedded
systems, across their port): evidence of what was sent, where, when and with what result.

Rules:
- One `Call` per request on the wire (one Tryton RPC, one Stripe HTTP request, one write of
  a file drop) or per port call of an embedded system. A retry is another call.
- A call names the subjects it was made for: the (correlation id, idempotency key) of each
  delivery it carries, several for a batch. The hub's delivery sets them (`delivering`) in a
  context variable around its calls, so connectors need no parameter for them and never
  import storage; a call made outside any delivery has none, or those its caller names.
- Excerpts are redacted before they leave the connector (`connectors.excerpt`); no header is
  recorded, so credentials never are.
- Recording never changes a call's outcome: the effect has happened (or not) whatever the
  log does. A recorder that fails says so in the error log (see `storage.call_log`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from finsync.connectors.excerpt import redacted
from finsync.domain.call import Call, Channel, Subject
from finsync.domain.errors import ConnectorError, FinsyncError, PermanentError, TransientError

__all__ = ["NO_RECORDER", "Call", "CallRecorder", "Channel", "Exchange", "NoRecorder",
           "Subject", "current_subjects", "delivering", "error_of", "recorded", "status_of"]


class CallRecorder(Protocol):
    """Where calls go (the hub's call log, wired by bootstrap)."""

    def record(self, call: Call) -> None: ...


class NoRecorder:
    """Records nothing: for adapters built without a log (tools, one-off scripts)."""

    def record(self, call: Call) -> None:
        return None


NO_RECORDER: CallRecorder = NoRecorder()

_subjects: ContextVar[tuple[Subject, ...]] = ContextVar("finsync_call_subjects", default=())


@contextmanager
def delivering(subjects: Sequence[Subject]) -> Iterator[None]:
    """Calls made inside are made for `subjects` (the hub's delivery says which)."""
    token = _subjects.set(tuple(subjects))
    try:
        yield
    finally:
        _subjects.reset(token)


def current_subjects() -> tuple[Subject, ...]:
    return _subjects.get()


@dataclass(slots=True)
class Exchange:
    """What the caller learns during a call and fills in: the answer's status, sizes and
    excerpts (set through `request`/`response`, which redact; `None` keeps no excerpt)."""

    status: str = "ok"
    error: str | None = None
    request_bytes: int | None = None
    response_bytes: int | None = None
    request_excerpt: str | None = None
    response_excerpt: str | None = None
    subjects: tuple[Subject, ...] = field(default_factory=current_subjects)

    def request(self, value: object, size: int | None = None) -> None:
        self.request_excerpt = None if value is None else redacted(value)
        self.request_bytes = size

    def response(self, value: object, size: int | None = None) -> None:
        self.response_excerpt = None if value is None else redacted(value)
        self.response_bytes = size


def status_of(exc: BaseException) -> str:
    if isinstance(exc, TransientError):
        return "transient"
    if isinstance(exc, PermanentError):
        return "permanent"
    return "error"


def error_of(exc: BaseException) -> str:
    """A few words on an error that carry no data: its code (and class for connector
    errors), else its type."""
    if isinstance(exc, ConnectorError):
        return f"{exc.code}:{exc.exception_class.value}"
    if isinstance(exc, FinsyncError):
        return exc.code
    return type(exc).__name__


@contextmanager
def recorded(recorder: CallRecorder, system: str, channel: Channel, method: str,
             endpoint: str, subjects: Sequence[Subject] | None = None) -> Iterator[Exchange]:
    """Time the call made inside and record it, whatever its outcome; an error raised
    inside sets the status (unless the caller already set an HTTP one) and leaves as it
    came."""
    exchange = Exchange()
    if subjects is not None and not exchange.subjects:  # outside a delivery: the caller's
        exchange.subjects = tuple(subjects)
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    try:
        yield exchange
    except BaseException as exc:
        if exchange.status == "ok":
            exchange.status = status_of(exc)
        exchange.error = exchange.error or error_of(exc)
        raise
    finally:
        recorder.record(Call(
            system, channel, method, endpoint, exchange.status, started_at,
            round((time.perf_counter() - started) * 1_000_000), exchange.subjects,
            exchange.request_bytes, exchange.response_bytes, exchange.request_excerpt,
            exchange.response_excerpt, exchange.error))
