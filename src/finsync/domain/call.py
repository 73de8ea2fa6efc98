"""An external call as the call log keeps it: evidence of what a connector sent, where,
when, for which deliveries and with what result (written by connectors, stored by the
hub's storage, which must not know the connectors).

Rules:
- `status` is the HTTP status where there is one, else `ok`, or how the call failed
  (`transient`, `permanent`, `error`, `unreachable`); `error` names the error in a few
  words (a Tryton error kind, Stripe's error type and code, an error code), never a message
  that may quote personal data.
- Excerpts are redacted before a `Call` is made (`connectors.excerpt`).
- `duration_us` is whole microseconds, `started_at` UTC-aware.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Channel(StrEnum):
    """How the call travelled."""

    JSON_RPC = "json-rpc"  # Tryton
    HTTP = "http"  # Stripe
    FILE = "file"  # a file drop
    PORT = "port"  # an embedded system, in process


@dataclass(frozen=True, slots=True)
class Subject:
    """A delivery a call was made for."""

    correlation_id: str
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class Call:
    """One external call (see the rules above)."""

    system: str
    channel: Channel
    method: str
    endpoint: str
    status: str
    started_at: datetime
    duration_us: int
    subjects: tuple[Subject, ...] = ()
    request_bytes: int | None = None
    response_bytes: int | None = None
    request_excerpt: str | None = None
    response_excerpt: str | None = None
    error: str | None = None
