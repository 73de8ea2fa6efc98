"""Stripe's webhook signature scheme, verified on the raw request body.

Rules:
- Header `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>…][,v0=…]`; only `v1`
  (HMAC-SHA256 of `"<t>.<raw body>"` keyed by the endpoint secret) is trusted.
- The request is accepted when any `v1` matches any configured secret: two secrets overlap
  while one is rotated. Comparison is constant-time.
- The signature is checked before the timestamp, so a forged request never learns whether
  its timestamp would have passed; the timestamp must then be within `tolerance_s` of the
  injected clock (either side), which bounds replays.
- Every refusal is a `SignatureError` with a machine-readable code.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from finsync.domain.clock import require_utc
from finsync.domain.errors import SignatureError

HEADER = "stripe-signature"
DEFAULT_TOLERANCE_S = 300


@dataclass(frozen=True, slots=True)
class SignatureHeader:
    timestamp: int
    v1: tuple[str, ...]


def parse_header(value: str | None) -> SignatureHeader:
    if value is None or not value.strip():
        raise SignatureError("no Stripe-Signature header", code="signature_missing")
    timestamp: int | None = None
    v1: list[str] = []
    for part in value.split(","):
        key, sep, item = part.strip().partition("=")
        if not sep or not item:
            raise SignatureError(f"Stripe-Signature element {part!r} is not key=value",
                                 code="signature_malformed")
        if key == "t":
            if not item.isdigit() or timestamp is not None:
                raise SignatureError("Stripe-Signature needs exactly one numeric t=",
                                     code="signature_malformed")
            timestamp = int(item)
        elif key == "v1":
            v1.append(item)
    if timestamp is None or not v1:
        raise SignatureError("Stripe-Signature needs t= and at least one v1=",
                             code="signature_malformed")
    return SignatureHeader(timestamp, tuple(v1))


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The `v1` signature Stripe sends for `body` at `timestamp`."""
    payload = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def header_for(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={sign(secret, timestamp, body)}"


def verify(body: bytes, header: str | None, secrets: Sequence[str], now: datetime,
           tolerance_s: int = DEFAULT_TOLERANCE_S) -> int:
    """Check a webhook; returns its signed timestamp, or raises `SignatureError`."""
    if not secrets:
        raise ValueError("verify needs at least one secret")
    parsed = parse_header(header)
    expected = [sign(secret, parsed.timestamp, body) for secret in secrets]
    # Compare every pair (no early exit), so timing tells nothing about which one matched.
    matched = False
    for candidate in parsed.v1:
        for good in expected:
            matched |= hmac.compare_digest(candidate.encode(), good.encode())
    if not matched:
        raise SignatureError("no v1 signature matches a configured secret",
                             code="signature_mismatch")
    age_s = require_utc(now).timestamp() - parsed.timestamp
    if abs(age_s) > tolerance_s:
        raise SignatureError(f"signed {age_s:.0f} s from now, outside the {tolerance_s} s "
                             "tolerance", code="timestamp_outside_tolerance")
    return parsed.timestamp
