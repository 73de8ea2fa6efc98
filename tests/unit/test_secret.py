"""Secrets: masked by their shape, never printed, rotated with an overlap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from finsync.domain.headers import stored_headers
from finsync.domain.secret import (
    RotatingSecret,
    Secret,
    looks_secret,
    mask_secrets,
    valid_at,
)

TOKEN = "fsk_Q2xhc3NpZmllZC1wbGFudGVkLXRva2Vu"


@pytest.mark.parametrize("secret", [
    TOKEN,
    "sk_live_51Hq8pLANTEDkey0000000000",
    "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
    "rk_live_abcdefghijklmnop",
    "whsec_plantedWebhookSecret123",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
])
def test_each_shape_of_credential_is_masked(secret: str) -> None:
    text = f"calling with {secret} failed"
    assert secret not in mask_secrets(text)
    assert mask_secrets(text).startswith("calling with ")
    assert looks_secret(secret)


def test_authorization_values_keep_their_scheme() -> None:
    assert mask_secrets("Authorization: Bearer abc.def-123") == "Authorization: Bearer [redacted]"
    basic = "Basic dXNlcjpwbGFudGVkLXBhc3N3b3Jk"
    assert mask_secrets(basic) == "Basic [redacted]"
    assert mask_secrets("Session YWRtaW46MTpwbGFudGVkdG9rZW4=") == "Session [redacted]"


def test_prose_is_left_alone() -> None:
    for text in ("the session started", "basic checks passed", "a token was rotated",
                 "bearer of bad news", "sk_ is a prefix"):
        assert mask_secrets(text) == text


def test_a_url_keeps_everything_but_its_password() -> None:
    assert (mask_secrets("postgresql://finsync:hunter2-planted@db:5432/hub")
            == "postgresql://finsync:[redacted]@db:5432/hub")


def test_a_private_key_block_goes_whole() -> None:
    pem = ("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIPlanted\n"
           "-----END PRIVATE KEY-----")
    assert mask_secrets(f"key: {pem} end") == "key: [redacted] end"


def test_a_secret_never_prints_itself() -> None:
    secret = Secret("whsec_plantedWebhookSecret123")
    assert "planted" not in repr(secret) + str(secret) + f"{secret}" + repr([secret])
    assert secret.reveal() == "whsec_plantedWebhookSecret123"
    with pytest.raises(ValueError, match="empty"):
        Secret("")


def test_a_rotated_secret_works_until_its_not_after_then_only_the_new_one() -> None:
    cutover = datetime(2026, 12, 7, tzinfo=UTC)
    old = RotatingSecret(Secret("whsec_old_000000"), not_after=cutover)
    new = RotatingSecret(Secret("whsec_new_000000"))
    assert valid_at([new, old], cutover - timedelta(seconds=1)) == ["whsec_new_000000",
                                                                    "whsec_old_000000"]
    assert valid_at([new, old], cutover) == ["whsec_new_000000"]
    with pytest.raises(ValueError, match="timezone"):
        RotatingSecret(Secret("x"), not_after=datetime.fromisoformat("2026-01-01T00:00"))


def test_stored_headers_are_an_allowlist() -> None:
    sent = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}",
            "Cookie": "session=planted", "X-Api-Key": "planted-key",
            "X-Auth-Token": "planted-auth", "Proxy-Authorization": "Basic cGxhbnRlZA==",
            "X-Custom-Secret": "planted-custom", "Stripe-Signature": "t=1,v1=ab",
            "Idempotency-Key": "idem-1", "User-Agent": "Stripe/1.0",
            "X-Request-Id": "req-1"}
    assert stored_headers(sent) == {
        "content-type": "application/json", "stripe-signature": "t=1,v1=ab",
        "idempotency-key": "idem-1", "user-agent": "Stripe/1.0", "x-request-id": "req-1"}


def test_a_kept_header_that_holds_a_credential_is_masked() -> None:
    assert stored_headers({"User-Agent": f"bot {TOKEN}"}) == {"user-agent": "bot [redacted]"}
