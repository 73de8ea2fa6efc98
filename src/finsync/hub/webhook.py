"""Signed webhooks: verify on the raw bytes, store before answering, record every refusal.

Rules:
- A request whose signature verifies is stored as a raw event of its source (committed
  before the caller answers 2xx); mapping happens later in the pipeline, so a payload that
  cannot be mapped is a `mapping_error` there, never a reason for the sender to retry.
- A refused request is kept too: its raw body is stored with status `rejected` and the
  signature error's code, and an `ownership_violation` exception is opened. The class fits:
  the request claims to come from the system of record of billing and payments and cannot
  prove it. Repeats of the same refusal (same source, code and body) update one exception.
- Bodies larger than `body_max` are refused before anything else and recorded without
  their body (a forged request must not be able to fill the database).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from datetime import datetime

from sqlalchemy import Engine

from finsync.domain.errors import ExceptionClass, SignatureError
from finsync.domain.status import RawStatus
from finsync.storage import exception_log, raw_log
from finsync.storage.db import transaction
from finsync.storage.exception_log import NewException
from finsync.storage.raw_log import RawIn

# (raw body, request headers with lower-case names) -> None, or raises SignatureError
Verify = Callable[[bytes, Mapping[str, str]], object]
BODY_MAX = 1 << 20


class WebhookIntake:
    def __init__(self, engine: Engine, source: str, verify: Verify,
                 clock: Callable[[], datetime], body_max: int = BODY_MAX) -> None:
        self.source = source
        self._engine, self._verify, self._clock, self._body_max = engine, verify, clock, body_max

    def receive(self, body: bytes, headers: Mapping[str, str],
                content_type: str | None = None) -> int:
        """Store a verified request and return its raw event id; raises `SignatureError`
        after recording a refused one."""
        lowered = {k.lower(): v for k, v in headers.items()}
        try:
            if len(body) > self._body_max:
                raise SignatureError(f"body of {len(body)} bytes exceeds {self._body_max}",
                                     code="body_too_large")
            self._verify(body, lowered)
        except SignatureError as exc:
            self._record_refusal(body, lowered, content_type, exc)
            raise
        with transaction(self._engine) as conn:
            return raw_log.append_one(conn, RawIn(self.source, body, lowered, content_type),
                                      self._clock())

    def _record_refusal(self, body: bytes, headers: Mapping[str, str],
                        content_type: str | None, error: SignatureError) -> None:
        kept = b"" if error.code == "body_too_large" else body
        digest = hashlib.sha256(body).hexdigest()
        at = self._clock()
        with transaction(self._engine) as conn:
            raw_id = raw_log.append_one(conn, RawIn(self.source, kept, headers, content_type), at)
            raw_log.mark(conn, raw_id, RawStatus.REJECTED, at, error.code, str(error))
            exception_log.open_exception(conn, NewException(
                ExceptionClass.OWNERSHIP_VIOLATION,
                f"webhook:{self.source}:{error.code}:{digest}",
                f"{self.source} webhook refused ({error.code}): {error}",
                objects=(f"raw_event:{raw_id}",), raw_event_id=raw_id, detail=error.code), at)
