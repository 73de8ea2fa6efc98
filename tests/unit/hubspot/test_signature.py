"""HubSpot's v3 signature: base64 HMAC-SHA256 of method + URI + body + timestamp (ms)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from finsync.connectors.hubspot.signature import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    headers_for,
    sign,
    signed_uri,
    verify,
)
from finsync.domain.errors import SignatureError

SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
URI = "https://finsync.example.com/v1/webhooks/hubspot/crm"
BODY = b'[{"eventId":1,"subscriptionType":"deal.propertyChange","objectId":9001}]'
NOW = datetime(2026, 5, 15, 9, 30, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)


def lowered(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def test_sign_is_hmac_sha256_of_method_uri_body_timestamp_in_base64() -> None:
    # Worked by hand: the source string is the four parts with no separator.
    source = b"POST" + URI.encode() + BODY + str(NOW_MS).encode()
    expected = base64.b64encode(hmac.new(SECRET.encode(), source, hashlib.sha256).digest())
    assert sign(SECRET, URI, BODY, str(NOW_MS)) == expected.decode()


def test_valid_request_verifies_and_returns_its_timestamp() -> None:
    headers = lowered(headers_for(SECRET, URI, BODY, NOW_MS))
    assert verify(BODY, headers, URI, [SECRET], NOW) == NOW_MS


def test_tampered_body_is_refused() -> None:
    headers = lowered(headers_for(SECRET, URI, BODY, NOW_MS))
    tampered = BODY.replace(b"9001", b"9002")
    with pytest.raises(SignatureError) as refused:
        verify(tampered, headers, URI, [SECRET], NOW)
    assert refused.value.code == "signature_mismatch"


def test_another_uri_is_refused() -> None:
    headers = lowered(headers_for(SECRET, URI + "?x=1", BODY, NOW_MS))
    with pytest.raises(SignatureError) as refused:
        verify(BODY, headers, URI, [SECRET], NOW)
    assert refused.value.code == "signature_mismatch"


def test_wrong_secret_is_refused_and_a_rotated_one_accepted() -> None:
    headers = lowered(headers_for("attacker", URI, BODY, NOW_MS))
    with pytest.raises(SignatureError) as refused:
        verify(BODY, headers, URI, [SECRET], NOW)
    assert refused.value.code == "signature_mismatch"
    old = lowered(headers_for("previous", URI, BODY, NOW_MS))
    assert verify(BODY, old, URI, [SECRET, "previous"], NOW) == NOW_MS


@pytest.mark.parametrize("age", [timedelta(minutes=5, seconds=1), timedelta(hours=1),
                                 -timedelta(minutes=6)])
def test_stale_or_future_timestamp_is_refused(age: timedelta) -> None:
    # Signed 5 min 1 s before NOW: 301 s > 300 s tolerance.
    stamp = int((NOW - age).timestamp() * 1000)
    headers = lowered(headers_for(SECRET, URI, BODY, stamp))
    with pytest.raises(SignatureError) as refused:
        verify(BODY, headers, URI, [SECRET], NOW)
    assert refused.value.code == "timestamp_outside_tolerance"


def test_just_within_five_minutes_is_accepted() -> None:
    stamp = int((NOW - timedelta(minutes=4, seconds=59)).timestamp() * 1000)
    headers = lowered(headers_for(SECRET, URI, BODY, stamp))
    assert verify(BODY, headers, URI, [SECRET], NOW) == stamp


def test_a_stale_forgery_learns_only_that_it_is_forged() -> None:
    stamp = int((NOW - timedelta(hours=2)).timestamp() * 1000)
    headers = lowered(headers_for("attacker", URI, BODY, stamp))
    with pytest.raises(SignatureError) as refused:
        verify(BODY, headers, URI, [SECRET], NOW)
    assert refused.value.code == "signature_mismatch"


@pytest.mark.parametrize(("headers", "code"), [
    ({}, "signature_missing"),
    ({SIGNATURE_HEADER: "abc"}, "signature_missing"),
    ({SIGNATURE_HEADER: "abc", TIMESTAMP_HEADER: "now"}, "signature_malformed"),
    ({SIGNATURE_HEADER: "abc", TIMESTAMP_HEADER: "9" * 40}, "signature_malformed"),
    ({SIGNATURE_HEADER: "!!!not base64!!!", TIMESTAMP_HEADER: str(NOW_MS)},
     "signature_malformed"),
    ({SIGNATURE_HEADER: base64.b64encode(b"short").decode(), TIMESTAMP_HEADER: str(NOW_MS)},
     "signature_malformed"),
    ({SIGNATURE_HEADER: "A" * 5000, TIMESTAMP_HEADER: str(NOW_MS)}, "signature_malformed"),
])
def test_missing_or_malformed_headers_are_refused(headers: dict[str, str], code: str) -> None:
    with pytest.raises(SignatureError) as refused:
        verify(BODY, headers, URI, [SECRET], NOW)
    assert refused.value.code == code


def test_the_uri_is_signed_with_hubspots_escapes_decoded() -> None:
    # %3F and %2C are in HubSpot's table, %3D (=) and %20 (space) are not.
    decoded = signed_uri("https://x.example/hook%3Fa%3Db%2Cc%20d")
    assert decoded == "https://x.example/hook?a%3Db,c%20d"
    encoded = "https://x.example/hook?next=%2Fdeal%3A9001"
    headers = lowered(headers_for(SECRET, "https://x.example/hook?next=/deal:9001", BODY,
                                  NOW_MS))
    assert verify(BODY, headers, encoded, [SECRET], NOW) == NOW_MS


@given(body=st.binary(max_size=512), offset_ms=st.integers(-299_000, 299_000))
def test_any_body_signed_now_verifies(body: bytes, offset_ms: int) -> None:
    headers = lowered(headers_for(SECRET, URI, body, NOW_MS + offset_ms))
    assert verify(body, headers, URI, [SECRET], NOW) == NOW_MS + offset_ms
