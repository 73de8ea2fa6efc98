"""HubSpot's v3 request signature, verified on the raw request body.

Rules:
- Headers `X-HubSpot-Signature-v3` (base64 of an HMAC-SHA256) and
  `X-HubSpot-Request-Timestamp` (unix milliseconds). The HMAC is keyed by the app's client
  secret and taken over the UTF-8 bytes of method + request URI + body + timestamp, with no
  separator; the body is the raw bytes received, never a re-serialised copy.
- The request URI is the webhook's target URL as configured in HubSpot (finsync is often
  behind a proxy, so the URL it sees is not the one HubSpot called). HubSpot signs the URI
  with these characters decoded: %3A : %2F / %3F ? %40 @ %21 ! %24 $ %27 ' %28 ( %29 )
  %2A * %2C , %3B ; (its documentation's table); other escapes stay as they are.
- Accepted when the signature matches any configured secret (two overlap while one is
  rotated); comparison is constant-time and walks every secret.
- The signature is checked before the timestamp, so a forged request never learns whether
  its timestamp would have passed; then the timestamp must be within `tolerance_s` (HubSpot
  says five minutes) of the injected clock, either side: a stale request is a replay.
- Every refusal is a `SignatureError` with a machine-readable code.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from datetime import datetime

from finsync.domain.clock import require_utc
from finsync.domain.errors import SignatureError

SIGNATURE_HEADER = "x-hubspot-signature-v3"
TIMESTAMP_HEADER = "x-hubspot-request-timestamp"
DEFAULT_TOLERANCE_S = 300
METHOD = "POST"  # HubSpot delivers webhooks by POST
SIGNATURE_MAX_CHARS = 100  # base64 of 32 bytes is 44
TIMESTAMP_MAX_DIGITS = 16

_DECODED = {"%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$",
            "%27": "'", "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";"}


def signed_uri(uri: str) -> str:
    """`uri` as HubSpot signs it: the escapes of its table decoded (either case)."""
    out: list[str] = []
    index = 0
    while index < len(uri):
        escape = uri[index:index + 3].upper()
        if escape in _DECODED:
            out.append(_DECODED[escape])
            index += 3
        else:
            out.append(uri[index])
            index += 1
    return "".join(out)


def sign(secret: str, uri: str, body: bytes, timestamp_ms: str, method: str = METHOD) -> str:
    """The `X-HubSpot-Signature-v3` value HubSpot sends for this request."""
    message = (method + signed_uri(uri)).encode() + body + timestamp_ms.encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def headers_for(secret: str, uri: str, body: bytes, timestamp_ms: int) -> dict[str, str]:
    """The two headers of a request HubSpot signs at `timestamp_ms`."""
    stamp = str(timestamp_ms)
    return {"X-HubSpot-Signature-v3": sign(secret, uri, body, stamp),
            "X-HubSpot-Request-Timestamp": stamp}


def verify(body: bytes, headers: Mapping[str, str], uri: str, secrets: Sequence[str],
           now: datetime, tolerance_s: int = DEFAULT_TOLERANCE_S) -> int:
    """Check a request (`headers` with lower-case names); returns its signed timestamp in
    milliseconds, or raises `SignatureError`."""
    if not secrets:
        raise ValueError("verify needs at least one secret")
    given, stamp = _parsed(headers)
    matched = False
    for secret in secrets:  # every one, no early exit: timing tells nothing
        expected = base64.b64decode(sign(secret, uri, body, stamp))
        matched |= hmac.compare_digest(given, expected)
    if not matched:
        raise SignatureError("the X-HubSpot-Signature-v3 matches no configured client secret",
                             code="signature_mismatch")
    age_s = require_utc(now).timestamp() - int(stamp) / 1000
    if abs(age_s) > tolerance_s:
        raise SignatureError(f"signed {age_s:.0f} s from now, outside the {tolerance_s} s "
                             "tolerance", code="timestamp_outside_tolerance")
    return int(stamp)


def _parsed(headers: Mapping[str, str]) -> tuple[bytes, str]:
    """(the signature's 32 bytes, the timestamp's digits)."""
    signature = (headers.get(SIGNATURE_HEADER) or "").strip()
    stamp = (headers.get(TIMESTAMP_HEADER) or "").strip()
    if not signature or not stamp:
        raise SignatureError("a HubSpot request needs X-HubSpot-Signature-v3 and "
                             "X-HubSpot-Request-Timestamp", code="signature_missing")
    if len(stamp) > TIMESTAMP_MAX_DIGITS or not stamp.isascii() or not stamp.isdigit():
        raise SignatureError(f"X-HubSpot-Request-Timestamp must be unix milliseconds (at most "
                             f"{TIMESTAMP_MAX_DIGITS} digits)", code="signature_malformed")
    if len(signature) > SIGNATURE_MAX_CHARS:
        raise SignatureError(f"X-HubSpot-Signature-v3 is longer than {SIGNATURE_MAX_CHARS} "
                             "characters", code="signature_malformed")
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("X-HubSpot-Signature-v3 is not base64",
                             code="signature_malformed") from None
    if len(raw) != hashlib.sha256().digest_size:
        raise SignatureError("X-HubSpot-Signature-v3 is not an HMAC-SHA256",
                             code="signature_malformed")
    return raw, stamp
