"""Intake: say whether a payload can be mapped, commit it, then answer; record every refusal.

Rules:
- Nothing is lost: a payload is committed before the sender hears 2xx; a payload refused at
  intake is kept too (once, see below) and finance sees an exception.
- A payload is mapped once: what intake mapped to answer the sender is handed to the
  processor (`Mapped`), which maps only what it does not find there (a restart, another
  process). The hand-over is bounded; what falls out is mapped again, never lost.
- JSON nesting and size are checked with the source's limits before anything parses the
  body; a `RecursionError` while mapping is a `json_too_deep` refusal, never a crash. A
  mapper that fails in any other way is a defect, not the sender's: the payload is stored
  as received and the pipeline quarantines it.
- Refusals aggregate (finding 3): a refused body within limits is stored once per source,
  body and code and counted (`raw_events.refusals`); a body over the limit is never stored.
  Each refusal opens or counts one exception per source and cause, fingerprint
  `refused:<source>:<code>` (`refusal_fingerprint`), never one per request. Refusals of one
  source are serialised, so concurrent identical requests cannot store two copies.
- A stored raw event that does not map (`reject_in`) opens one `mapping_error` per source
  object when the mapper names the object (`MappingError.subject`): every copy of it
  (webhook, poller, resend, another event on it) is an occurrence of that one exception,
  fingerprint `mapping:object:<source>:<object>`; otherwise one per raw event.
- A source name that cannot be a source (not `SOURCE_NAME`) is refused without keeping the
  body, under the source `?`: the name is not stored.
- Requests are rate-limited per source (`RateLimiter`, a token bucket); every unknown
  source shares one bucket, so made-up names cannot multiply buckets or evade the limit.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, Engine

from finsync.domain import json_limits
from finsync.domain.envelope import Envelope
from finsync.domain.errors import DomainError, ExceptionClass, FinsyncError, MappingError
from finsync.domain.limits import InputLimits
from finsync.domain.sensitive import payload_values, redact_text
from finsync.domain.status import RawStatus
from finsync.hub.mapping import MapperRegistry
from finsync.storage import exception_log, raw_log
from finsync.storage.db import serialize, transaction
from finsync.storage.raw_log import RawEvent, RawIn

_log = logging.getLogger(__name__)

MAPPED_MAX = 10_000
SOURCE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # fits raw_events.source
OWNERSHIP_VIOLATION = ExceptionClass.OWNERSHIP_VIOLATION.value  # the refusal's code
NO_SOURCE = "?"  # what a refusal is filed under when the name it gave cannot be a source
UNKNOWN_SOURCES = "?unknown"  # the one rate-limit bucket every unknown source shares
# Which items of a batch may be stored, decided in the batch's own transaction.
Vet = Callable[[Connection], Sequence[bool]]


class BodyTooLargeError(DomainError):
    """A request body over its source's `body_max_bytes`. `size` is the body's length when
    it is known (read whole, or declared by Content-Length); None when reading stopped at
    the limit."""

    code = "body_too_large"

    def __init__(self, limit: int, size: int | None = None, *, declared: bool = False) -> None:
        what = f"body of more than {limit:,} bytes"
        if size is not None:
            what = f"body of {size:,} bytes" + (" (Content-Length)" if declared else "")
        super().__init__(f"{what} exceeds the limit of {limit:,} (body_max_bytes)")
        self.limit, self.size = limit, size


class RateLimitedError(FinsyncError):
    """A source sent more than its `requests_per_s` (after `burst`); retry after
    `retry_after_s` whole seconds."""

    code = "rate_limited"

    def __init__(self, source: str, limits: InputLimits, retry_after_s: int) -> None:
        super().__init__(f"source {source!r} is over its rate of {limits.requests_per_s:g} "
                         f"requests/s (requests_per_s, burst {limits.burst:,}); retry after "
                         f"{retry_after_s} s")
        self.retry_after_s = retry_after_s


REFUSED = "refused:"  # the fingerprint prefix of aggregated refusals


def refusal_fingerprint(source: str, code: str) -> str:
    return f"{REFUSED}{source}:{code}"


@dataclass(frozen=True, slots=True)
class Refusal:
    """One refused request: its source, the error the sender gets, the class of exception
    finance sees, and its body when the body is within limits (None: not kept)."""

    source: str
    error: FinsyncError
    exception_class: ExceptionClass
    body: bytes | None
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str | None = None


def record_refusal(engine: Engine, refusal: Refusal, at: datetime) -> int | None:
    """Store the body once and count it, and open or count the exception of its source and
    cause, in one transaction; returns the raw event that holds the body (None: not kept).

    The exception names the raw events it stands for in `objects` (`raw_event:<id>`, up to
    `exception_log.OBJECTS_MAX`; `raw_log.refused_ids(source, code)` has them all). Only a
    mapping refusal carries a `raw_event_id` (what triage maps again); a body that failed
    its signature is never mapped by a retry.
    """
    named = refusal.source if SOURCE_NAME.fullmatch(refusal.source) else NO_SOURCE
    code = refusal.error.code
    told = _told(str(refusal.error), refusal.body)
    with transaction(engine) as conn:
        serialize(conn, f"finsync.refusal:{named}")
        raw_id = None
        if refusal.body is not None and named != NO_SOURCE:
            raw_id = raw_log.append_refused(conn, RawIn(named, refusal.body, refusal.headers,
                                                        refusal.content_type),
                                            at, code, told)
        retried = refusal.exception_class is ExceptionClass.MAPPING_ERROR
        exception_log.open_aggregated(conn, exception_log.NewException(
            refusal.exception_class, refusal_fingerprint(named, code),
            f"requests of {_shown(refusal.source)} refused ({code}): {told}",
            objects=() if raw_id is None else (f"raw_event:{raw_id}",),
            raw_event_id=raw_id if retried else None, detail=code), at)
    return raw_id


def _told(message: str, body: bytes | None) -> str:
    """An error about a body as finance reads it: without the body's personal data (an
    error may quote a value) nor anything that looks like a credential."""
    return redact_text(message, payload_values(body) if body else ())


def _shown(source: str) -> str:
    if SOURCE_NAME.fullmatch(source):
        return f"source {source}"
    return f"a source named {source[:64]!r}"


class Mapped:
    """Envelopes intake mapped, by raw event id, until the processor takes them."""

    def __init__(self, size_max: int = MAPPED_MAX) -> None:
        self._items: OrderedDict[int, list[Envelope]] = OrderedDict()
        self._size_max, self._lock = size_max, threading.Lock()

    def put(self, raw_id: int, envelopes: list[Envelope]) -> None:
        with self._lock:
            self._items[raw_id] = envelopes
            while len(self._items) > self._size_max:
                self._items.popitem(last=False)

    def take(self, raw_id: int) -> list[Envelope] | None:
        with self._lock:
            return self._items.pop(raw_id, None)

    def holds(self, raw_id: int) -> bool:
        with self._lock:
            return raw_id in self._items


class Intake:
    def __init__(self, engine: Engine, mappers: MapperRegistry,
                 clock: Callable[[], datetime], mapped: Mapped | None = None) -> None:
        self._engine, self._mappers, self._clock = engine, mappers, clock
        self.mapped = mapped or Mapped()

    def store(self, items: Sequence[RawIn]) -> int:
        """Durably store raw events in one transaction; returns only after commit."""
        with transaction(self._engine) as conn:
            return raw_log.append(conn, items, self._clock())

    def receive(self, source: str, body: bytes, headers: Mapping[str, str],
                content_type: str | None = None, limits: InputLimits | None = None) -> int:
        """Check that one payload maps, then store it in a transaction of its own; returns
        its raw event id after the commit. Raises `MappingError` once the refusal is
        recorded. (The HTTP API stores through `GroupCommit` instead.)"""
        envelopes, at = self.check(source, body, headers, content_type, limits)
        with transaction(self._engine) as conn:
            raw_id = raw_log.append_one(conn, RawIn(source, body, headers, content_type), at)
        if envelopes is not None:
            self.mapped.put(raw_id, envelopes)
        return raw_id

    def check(self, source: str, body: bytes, headers: Mapping[str, str],
              content_type: str | None = None, limits: InputLimits | None = None, *,
              writes_as: Callable[[str], bool] | None = None
              ) -> tuple[list[Envelope] | None, datetime]:
        """Map one payload before it is stored: its envelopes (None: the mapper failed by a
        defect, the pipeline quarantines it) and the moment it was received. A payload that
        does not map is refused: the refusal is recorded, then `MappingError` raised.

        `writes_as(name)`: whether the authenticated sender may write as source `name` (an
        API token's `events:write:<name>`). An envelope that says a source its sender may
        not write as is refused as an `ownership_violation`: the ownership check then relies
        on a name the sender proved, never on the body alone. A mapper is pure, so a payload
        whose mapping failed by a defect here fails again in the pipeline and is never
        accepted unchecked."""
        at = self._clock()
        try:
            envelopes = self._map(source, body, headers, at, limits or InputLimits())
        except MappingError as exc:
            self.refuse(Refusal(source, exc, ExceptionClass.MAPPING_ERROR, body, headers,
                                content_type))
            raise
        if writes_as is not None:
            claimed = sorted({e.source for e in envelopes or () if not writes_as(e.source)})
            if claimed:
                forged = MappingError(
                    f"the sender may write as source {source!r}, not as "
                    f"{', '.join(repr(c[:64]) for c in claimed)}", code=OWNERSHIP_VIOLATION)
                self.refuse(Refusal(source, forged, ExceptionClass.OWNERSHIP_VIOLATION, body,
                                    headers, content_type))
                raise forged
        return envelopes, at

    def store_mapped(self, items: Sequence[tuple[RawIn, list[Envelope] | None]], *,
                     vet: Vet | None = None) -> list[int | None]:
        """Store checked payloads in one transaction; their raw event ids, in order, after
        the commit. What intake mapped is handed to the processor. `vet(conn)`, run first in
        the same transaction, says which items may be stored: the others are not (None in
        their place)."""
        with transaction(self._engine) as conn:
            keep = [True] * len(items) if vet is None else list(vet(conn))
            kept = [item for item, good in zip(items, keep, strict=True) if good]
            ids = iter(raw_log.append_ids(conn, [raw for raw, _ in kept], self._clock()))
        stored = [next(ids) if good else None for good in keep]
        for raw_id, (_, envelopes) in zip(stored, items, strict=True):
            if raw_id is not None and envelopes is not None:
                self.mapped.put(raw_id, envelopes)
        return stored

    def refuse(self, refusal: Refusal) -> int | None:
        """Record a refusal (see `record_refusal`)."""
        return record_refusal(self._engine, refusal, self._clock())

    def _map(self, source: str, body: bytes, headers: Mapping[str, str], at: datetime,
             limits: InputLimits) -> list[Envelope] | None:
        """The envelopes of a payload, or None when the mapper failed by a defect of its
        own (the processor maps it again and quarantines it)."""
        if not self._mappers.knows(source):
            raise MappingError(f"no intake source named {source[:64]!r}", code="unknown_source")
        json_limits.check_body(body, limits)
        raw = RawEvent(0, source, at, headers, body, RawStatus.RECEIVED)  # id: not stored yet
        try:
            return self._mappers.map(raw)
        except RecursionError as exc:
            raise MappingError(f"payload nested too deeply to map: {exc}",
                               code="json_too_deep") from exc
        except MappingError:
            raise
        except DomainError as exc:  # a broken rule in the payload is its mapping error
            raise MappingError(str(exc), code=exc.code) from exc
        except Exception:  # a defect: logged here, quarantined by the pipeline with its trace
            _log.exception("mapping a %s payload failed at intake; stored for the pipeline",
                           source)
            return None


MAPPING_OBJECT = "mapping:object:"  # the fingerprint prefix of a source object's mapping_error
# What a subject may look like to key an exception by it (a fingerprint holds 255).
_SUBJECT = re.compile(r"[A-Za-z0-9_.:-]{1,160}")


def subject_key(subject: str) -> str:
    """A subject as exceptions name it: itself, or its digest when it is too long or holds
    characters an object reference does not."""
    if _SUBJECT.fullmatch(subject):
        return subject
    return "sha256-" + hashlib.sha256(subject.encode("utf-8", "replace")).hexdigest()


def object_fingerprint(source: str, subject: str) -> str:
    """The one `mapping_error` of a source's object, whatever the number of its copies."""
    return f"{MAPPING_OBJECT}{source}:{subject_key(subject)}"


def reject_in(conn: Connection, raw: RawEvent, error: MappingError, at: datetime) -> None:
    """Mark a raw event rejected and open its exception (`mapping_error`, or the class
    the error's code names), in the caller's transaction.

    An error that names the source's object (`MappingError.subject`) opens one exception
    per object (`object_fingerprint`): the webhook copy, the poller's copy, a resend or
    another event on the same object count one more occurrence of it and add their raw
    event to its objects (retry maps them all again). Otherwise the raw event has its own.
    """
    told = _told(str(error), raw.body)
    raw_log.mark(conn, raw.id, RawStatus.REJECTED, at, error.code, told)
    if error.subject is None:
        exception_log.open_exception(conn, exception_log.NewException(
            error.exception_class, f"mapping:raw:{raw.id}",
            f"{raw.source} event #{raw.id} could not be mapped: {told}",
            objects=(f"raw_event:{raw.id}",), raw_event_id=raw.id, detail=error.code), at)
        return
    subject = subject_key(error.subject)
    exception_log.open_aggregated(conn, exception_log.NewException(
        error.exception_class, object_fingerprint(raw.source, error.subject),
        f"{raw.source} {subject} could not be mapped (event #{raw.id}): {told}",
        objects=(subject, f"raw_event:{raw.id}"), raw_event_id=raw.id, detail=error.code), at)


class RateLimiter:
    """A token bucket per source, in this process, safe across threads: `burst` requests
    at once, refilled at `requests_per_s`. Keys are bounded by the caller (known sources,
    plus `UNKNOWN_SOURCES`)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str, limits: InputLimits) -> None:
        """Take one request's token for `key`; raises `RateLimitedError` when none is left."""
        with self._lock:
            now = self._clock()
            tokens, then = self._buckets.get(key, (float(limits.burst), now))
            tokens = min(float(limits.burst), tokens + (now - then) * limits.requests_per_s)
            if tokens < 1:
                self._buckets[key] = (tokens, now)
                wait_s = max(1, math.ceil((1 - tokens) / limits.requests_per_s))
                raise RateLimitedError(key, limits, wait_s)
            self._buckets[key] = (tokens - 1, now)
