"""Signed webhooks: verify on the raw bytes, store before answering, record every refusal.

Rules:
- A request whose signature verifies is stored as a raw event of its source (committed
  before the caller answers 2xx); mapping happens later in the pipeline, so a payload that
  cannot be mapped is a `mapping_error` there, never a reason for the sender to retry.
- A refused request is an `ownership_violation`: it claims to come from the system of record
  of billing and payments and cannot prove it. Refusals aggregate as intake's do
  (`intake.record_refusal`): its body is kept once per body and code, with status
  `rejected` and a count, and one exception per source and code counts the occurrences.
  Such a body is never mapped by a retry: the exception names it but has no raw event to
  send again.
- A stored body is then shown to the source's observer, if any (`observe`: the Stripe
  connector's local mirror records its objects). If that fails the sender hears a failure
  and sends again; the copy already stored is a duplicate to the hub.
- Each intake serves the endpoint of its `scheme`, `/v1/webhooks/<scheme>/<source>`
  (`stripe`: Stripe's signature; `cpq`: the CPQ sources' `Finsync-Signature`); a source
  posted to another scheme's endpoint is unknown there.
- A body over the source's `body_max_bytes` is refused before its signature is checked and
  is never stored (a forged request must not be able to fill the database). The HTTP
  boundary refuses it while streaming; this check is for callers that hold the bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from sqlalchemy import Engine

from finsync.domain.errors import ExceptionClass, FinsyncError, SignatureError
from finsync.domain.limits import InputLimits
from finsync.hub.intake import BodyTooLargeError, Refusal, record_refusal
from finsync.storage import raw_log
from finsync.storage.db import transaction
from finsync.storage.raw_log import RawIn

# (raw body, request headers with lower-case names) -> None, or raises SignatureError
Verify = Callable[[bytes, Mapping[str, str]], object]
# Told each stored body after its commit (the Stripe connector's local mirror); what it
# raises reaches the sender as a failure, so the sender sends the body again.
Observe = Callable[[bytes], object]
BODY_MAX = InputLimits().body_max_bytes
# Which endpoint takes a signed source's requests (`/v1/webhooks/<scheme>/<source>`).
STRIPE_SCHEME, CPQ_SCHEME = "stripe", "cpq"


class WebhookIntake:
    def __init__(self, engine: Engine, source: str, verify: Verify,
                 clock: Callable[[], datetime], body_max: int = BODY_MAX,
                 observe: Observe | None = None, scheme: str = STRIPE_SCHEME) -> None:
        self.source, self.scheme = source, scheme
        self._engine, self._verify, self._clock, self._body_max = engine, verify, clock, body_max
        self._observe = observe

    def receive(self, body: bytes, headers: Mapping[str, str],
                content_type: str | None = None, limits: InputLimits | None = None) -> int:
        """Store a verified request and return its raw event id; raises `SignatureError`
        (or `BodyTooLargeError`) after recording a refused one. `limits` are the source's
        (else `body_max` bounds the body)."""
        lowered = {k.lower(): v for k, v in headers.items()}
        limit = self._body_max if limits is None else limits.body_max_bytes
        if len(body) > limit:
            too_large = BodyTooLargeError(limit, len(body))
            self.refuse(too_large, None, lowered, content_type)
            raise too_large
        try:
            self._verify(body, lowered)
        except SignatureError as exc:
            self.refuse(exc, body, lowered, content_type)
            raise
        with transaction(self._engine) as conn:
            raw_id = raw_log.append_one(conn, RawIn(self.source, body, lowered, content_type),
                                        self._clock())
        if self._observe is not None:
            self._observe(body)
        return raw_id

    def refuse(self, error: FinsyncError, body: bytes | None, headers: Mapping[str, str],
               content_type: str | None = None) -> None:
        """Record a refused request of this source (`body` None: not kept)."""
        record_refusal(self._engine, Refusal(self.source, error,
                                             ExceptionClass.OWNERSHIP_VIOLATION, body,
                                             headers, content_type), self._clock())
