"""Stripe's webhook signature, verified on the raw request body (`connectors.signed_body`:
`Stripe-Signature: t=…,v1=…`; only `v1` is trusted, `v0` is ignored)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from finsync.connectors import signed_body
from finsync.connectors.signed_body import DEFAULT_TOLERANCE_S, header_for, sign

__all__ = ["DEFAULT_TOLERANCE_S", "HEADER", "header_for", "parse_header", "sign", "verify"]

HEADER = "stripe-signature"
_NAME = "Stripe-Signature"


def parse_header(value: str | None) -> signed_body.SignatureHeader:
    return signed_body.parse_header(_NAME, value)


def verify(body: bytes, header: str | None, secrets: Sequence[str], now: datetime,
           tolerance_s: int = DEFAULT_TOLERANCE_S) -> int:
    """Check a webhook; returns its signed timestamp, or raises `SignatureError`."""
    return signed_body.verify(_NAME, body, header, secrets, now, tolerance_s)
