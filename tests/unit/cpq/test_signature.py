"""The generic CPQ source's signature: valid, wrong, expired, rotated, malformed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from finsync.connectors.cpq import signature
from finsync.domain.errors import SignatureError

NOW = datetime(2026, 5, 15, 10, 30, tzinfo=UTC)
STAMP = int(NOW.timestamp())
BODY = b'{"type":"customer.upserted"}'
SECRET, OLD = "cpq-secret-current-0001", "cpq-secret-previous-0001"


def refused(body: bytes, header: str | None, secrets: list[str] | None = None,
            now: datetime = NOW) -> str:
    with pytest.raises(SignatureError) as error:
        signature.verify(body, header, [SECRET] if secrets is None else secrets, now)
    return error.value.code


def test_verify_a_valid_signature_returns_its_timestamp() -> None:
    header = signature.header_for(SECRET, STAMP, BODY)
    assert signature.verify(BODY, header, [SECRET], NOW) == STAMP


def test_verify_a_wrong_secret_or_a_changed_body_is_a_mismatch() -> None:
    wrong = signature.header_for("another-secret-000", STAMP, BODY)
    assert refused(BODY, wrong) == "signature_mismatch"
    changed = signature.header_for(SECRET, STAMP, BODY)
    assert refused(BODY + b" ", changed) == "signature_mismatch"


def test_verify_outside_the_tolerance_is_refused_either_side() -> None:
    header = signature.header_for(SECRET, STAMP, BODY)
    # 300 s tolerance: 301 s late or early is refused, 300 s is not
    late = refused(BODY, header, now=NOW + timedelta(seconds=301))
    early = refused(BODY, header, now=NOW - timedelta(seconds=301))
    assert late == early == "timestamp_outside_tolerance"
    assert signature.verify(BODY, header, [SECRET], NOW + timedelta(seconds=300)) == STAMP


def test_verify_a_forged_old_request_learns_nothing_about_its_timestamp() -> None:
    header = signature.header_for("forged-secret-0000", STAMP - 3600, BODY)
    assert refused(BODY, header) == "signature_mismatch"


def test_verify_rotated_secrets_either_signature_passes_during_the_overlap() -> None:
    old = signature.header_for(OLD, STAMP, BODY)
    new = signature.header_for(SECRET, STAMP, BODY)
    assert signature.verify(BODY, old, [SECRET, OLD], NOW) == STAMP
    assert signature.verify(BODY, new, [SECRET, OLD], NOW) == STAMP
    assert refused(BODY, old, [SECRET]) == "signature_mismatch"  # after the overlap
    signatures = [signature.sign(OLD, STAMP, BODY), signature.sign(SECRET, STAMP, BODY)]
    both = f"t={STAMP},v1={signatures[0]},v1={signatures[1]}"
    assert signature.verify(BODY, both, [SECRET], NOW) == STAMP


def test_verify_without_a_current_secret_verifies_nothing() -> None:
    assert refused(BODY, signature.header_for(SECRET, STAMP, BODY), []) == "no_current_secret"


@pytest.mark.parametrize("header, code", [
    (None, "signature_missing"),
    ("", "signature_missing"),
    ("v1=abc", "signature_malformed"),
    (f"t={STAMP}", "signature_malformed"),
    (f"t={STAMP},t={STAMP},v1=ab", "signature_malformed"),
    ("t=12e3,v1=ab", "signature_malformed"),
    ("t=1234567890123,v1=ab", "signature_malformed"),
    ("garbage", "signature_malformed"),
    (f"t={STAMP}," + ",".join(["v1=ab"] * 9), "signature_malformed"),
    (f"t={STAMP},v1=" + "a" * 2000, "signature_malformed"),
])
def test_parse_header_refuses_a_malformed_header(header: str | None, code: str) -> None:
    assert refused(BODY, header) == code
