"""The generic CPQ source's signature, verified on the raw request body: Stripe's scheme
(`connectors.signed_body`) in the header `Finsync-Signature`, so a sender can reuse a
Stripe-style signing helper."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from finsync.connectors import signed_body
from finsync.connectors.signed_body import DEFAULT_TOLERANCE_S, header_for, sign

__all__ = ["DEFAULT_TOLERANCE_S", "HEADER", "header_for", "sign", "verify"]

HEADER = "finsync-signature"
_NAME = "Finsync-Signature"


def verify(body: bytes, header: str | None, secrets: Sequence[str], now: datetime,
           tolerance_s: int = DEFAULT_TOLERANCE_S) -> int:
    """Check a request; returns its signed timestamp, or raises `SignatureError`."""
    return signed_body.verify(_NAME, body, header, secrets, now, tolerance_s)
