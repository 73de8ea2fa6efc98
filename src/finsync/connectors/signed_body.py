"""A request signature over the raw body with a timestamp, as Stripe signs its webhooks and
finsync's own CPQ source signs its requests (one scheme, two header names).

Rules:
- Header `<Name>: t=<unix seconds>,v1=<hex>[,v1=<hex>…]`; `v1` is the lower-case hex
  HMAC-SHA256 of `"<t>.<raw body>"` keyed by a shared secret. Other keys (Stripe's `v0`)
  are ignored and never trusted.
- Accepted when any `v1` matches any secret valid now: two secrets overlap while one is
  rotated. Every pair is compared in constant time, with no early exit.
- The signature is checked before the timestamp, so a forged request never learns whether
  its timestamp would have passed; the timestamp must then be within `tolerance_s` of the
  injected clock, either side, which bounds replays.
- The header is bounded (`HEADER_MAX_CHARS`, `SIGNATURES_MAX`): a sender cannot make the
  check compute without end. Every refusal is a `SignatureError` with a code.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from finsync.domain.clock import require_utc
from finsync.domain.errors import SignatureError

DEFAULT_TOLERANCE_S = 300
HEADER_MAX_CHARS = 1024
SIGNATURES_MAX = 8
_TIMESTAMP_DIGITS_MAX = 12


@dataclass(frozen=True, slots=True)
class SignatureHeader:
    timestamp: int
    v1: tuple[str, ...]


def parse_header(name: str, value: str | None) -> SignatureHeader:
    """The header `name` (as people spell it, e.g. "Stripe-Signature") holds `value`."""
    if value is None or not value.strip():
        raise SignatureError(f"no {name} header", code="signature_missing")
    if len(value) > HEADER_MAX_CHARS:
        raise SignatureError(f"{name} has {len(value)} characters: at most "
                             f"{HEADER_MAX_CHARS} (HEADER_MAX_CHARS)",
                             code="signature_malformed")
    timestamp: int | None = None
    v1: list[str] = []
    for part in value.split(","):
        key, sep, item = part.strip().partition("=")
        if not sep or not item:
            raise SignatureError(f"{name} element {part[:40]!r} is not key=value",
                                 code="signature_malformed")
        if key == "t":
            digits = item.isascii() and item.isdigit() and len(item) <= _TIMESTAMP_DIGITS_MAX
            if not digits or timestamp is not None:
                raise SignatureError(f"{name} needs exactly one numeric t=",
                                     code="signature_malformed")
            timestamp = int(item)
        elif key == "v1":
            v1.append(item)
    if timestamp is None or not v1:
        raise SignatureError(f"{name} needs t= and at least one v1=",
                             code="signature_malformed")
    if len(v1) > SIGNATURES_MAX:
        raise SignatureError(f"{name} carries {len(v1)} v1 signatures: at most "
                             f"{SIGNATURES_MAX} (SIGNATURES_MAX)", code="signature_malformed")
    return SignatureHeader(timestamp, tuple(v1))


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The `v1` signature of `body` at `timestamp`."""
    payload = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def header_for(secret: str, timestamp: int, body: bytes) -> str:
    """The whole header value a sender puts on `body` signed at `timestamp`."""
    return f"t={timestamp},v1={sign(secret, timestamp, body)}"


def verify(name: str, body: bytes, header: str | None, secrets: Sequence[str],
           now: datetime, tolerance_s: int = DEFAULT_TOLERANCE_S) -> int:
    """Check a request signed in header `name`; returns its signed timestamp, or raises
    `SignatureError`."""
    if not secrets:
        raise SignatureError("every secret of this source is past its not_after",
                             code="no_current_secret")
    parsed = parse_header(name, header)
    expected = [sign(secret, parsed.timestamp, body) for secret in secrets]
    matched = False
    for candidate in parsed.v1:
        for good in expected:
            matched |= hmac.compare_digest(candidate.encode(), good.encode())
    if not matched:
        raise SignatureError("no v1 signature matches a current secret of this source",
                             code="signature_mismatch")
    age_s = require_utc(now).timestamp() - parsed.timestamp
    if abs(age_s) > tolerance_s:
        raise SignatureError(f"signed {age_s:.0f} s from now, outside the {tolerance_s} s "
                             "tolerance", code="timestamp_outside_tolerance")
    return parsed.timestamp
