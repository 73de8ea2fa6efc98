"""Stripe's webhook signature scheme (https://docs.stripe.com/webhooks#verify-manually)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from finsync.connectors.stripe.signature import header_for, parse_header, sign, verify
from finsync.domain.errors import SignatureError

SECRET, OLD_SECRET = "whsec_new", "whsec_old"
T = 1_795_810_008
NOW = datetime.fromtimestamp(T + 5, UTC)
BODY = b'{"id": "evt_1", "object": "event"}'


def code_of(body: bytes, header: str | None, secrets: list[str], now: datetime = NOW) -> str:
    with pytest.raises(SignatureError) as caught:
        verify(body, header, secrets, now)
    return caught.value.code


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    # Known vector computed independently: hmac.new(b"whsec_new", b"1795810008.{...}", sha256)
    import hashlib
    import hmac
    expected = hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, T, BODY) == expected
    assert verify(BODY, header_for(SECRET, T, BODY), [SECRET], NOW) == T


def test_any_v1_matching_any_secret_is_accepted_during_rotation() -> None:
    header = f"t={T},v1={'0' * 64},v1={sign(OLD_SECRET, T, BODY)},v0=deadbeef"
    assert verify(BODY, header, [SECRET, OLD_SECRET], NOW) == T
    assert code_of(BODY, header, [SECRET]) == "signature_mismatch"


def test_missing_header_is_refused() -> None:
    assert code_of(BODY, None, [SECRET]) == "signature_missing"
    assert code_of(BODY, "  ", [SECRET]) == "signature_missing"


@pytest.mark.parametrize("header", ["v1=abc", "t=abc,v1=abc", f"t={T}", f"t={T},v0=abc",
                                    "garbage", f"t={T},t={T},v1=abc", f"t={T},v1="])
def test_malformed_header_is_refused(header: str) -> None:
    assert code_of(BODY, header, [SECRET]) == "signature_malformed"


def test_a_changed_body_or_wrong_secret_is_a_mismatch() -> None:
    header = header_for(SECRET, T, BODY)
    assert code_of(BODY + b" ", header, [SECRET]) == "signature_mismatch"
    assert code_of(BODY, header_for("whsec_attacker", T, BODY), [SECRET]) == "signature_mismatch"
    # v0 (Stripe's test-mode scheme) is never trusted
    assert code_of(BODY, f"t={T},v0={sign(SECRET, T, BODY)}", [SECRET]) \
        == "signature_malformed"


def test_timestamp_outside_tolerance_either_side_is_refused() -> None:
    header = header_for(SECRET, T, BODY)
    assert code_of(BODY, header, [SECRET], datetime.fromtimestamp(T + 301, UTC)) \
        == "timestamp_outside_tolerance"
    assert code_of(BODY, header, [SECRET], datetime.fromtimestamp(T - 301, UTC)) \
        == "timestamp_outside_tolerance"
    assert verify(BODY, header, [SECRET], datetime.fromtimestamp(T + 300, UTC)) == T


def test_a_stale_timestamp_with_a_forged_signature_reports_the_signature() -> None:
    stale = datetime.fromtimestamp(T + 10_000, UTC)
    assert code_of(BODY, f"t={T},v1={'a' * 64}", [SECRET], stale) == "signature_mismatch"


def test_parse_keeps_every_v1() -> None:
    assert parse_header(f"t={T},v1=a,v1=b").v1 == ("a", "b")
