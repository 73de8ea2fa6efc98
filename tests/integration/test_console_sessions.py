"""Console sessions: an API token exchanged for a cookie that is HttpOnly and
SameSite=Strict; the CSRF token every action of a session carries; idle timeout, absolute
expiry and log-out; a session never outlives what its token may do (revoked, expired,
rotated out); log-in and log-out in the audit trail. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from finsync.api.app import create_app
from finsync.api.security import CSRF_HEADER, SESSION_COOKIE
from finsync.audit.tables import trail
from finsync.auth import sessions, tokens
from finsync.auth.local import NotAuthenticatedError
from finsync.auth.principal import EXCEPTIONS_ACT, FINANCE_READ
from finsync.auth.tables import sessions as session_rows
from finsync.domain.clock import utc_now
from finsync.storage.db import reading
from tests import authkit
from tests.hubkit import make_hub

NOW = utc_now()


@pytest.fixture
def client(engine: Engine, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_hub(engine, tmp_path))) as served:
        yield served


def _log_in(client: TestClient, token: str) -> dict[str, object]:
    answer = client.post("/v1/session", json={"token": token})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_log_in_sets_an_http_only_strict_cookie(client: TestClient, engine: Engine) -> None:
    token = authkit.issue(engine, [FINANCE_READ], principal="AR.Clerk")
    answer = client.post("/v1/session", json={"token": token})
    cookie = answer.headers["set-cookie"]
    assert f"{SESSION_COOKIE}=fss_" in cookie
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert token not in cookie
    body = answer.json()
    assert (body["principal"], body["scopes"]) == ("ar.clerk", [FINANCE_READ])
    # The cookie alone now reads what the token may read; the API answers as that person.
    assert client.get("/v1/status").status_code == 200
    assert client.get("/v1/session").json()["csrf_token"] == body["csrf_token"]
    assert client.get("/v1/audit").json()["error"]["code"] == "forbidden"


def test_a_refused_token_opens_no_session(client: TestClient, engine: Engine) -> None:
    for token in ("fsk_" + "a" * 43, "not a token", "x" * 200):
        answer = client.post("/v1/session", json={"token": token})
        assert (answer.status_code, answer.json()["error"]["code"]) == (401, "not_authenticated")
        assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")
    too_long = client.post("/v1/session", json={"token": "x" * 201})
    assert (too_long.status_code, too_long.json()["error"]["code"]) == (422, "invalid_request")
    for body in (b"{", b"[]", b'{"token": 7}'):
        wrong = client.post("/v1/session", content=body)
        assert (wrong.status_code, wrong.json()["error"]["code"]) == (422, "invalid_request")


def test_the_public_log_in_reads_no_large_body(client: TestClient) -> None:
    """Anyone may post to the log-in: a body past 4 KiB is refused before it is read."""
    huge = client.post("/v1/session", content=b'{"token": "' + b"a" * (30 << 20) + b'"}')
    assert (huge.status_code, huge.json()["error"]["code"]) == (413, "body_too_large")


def test_an_action_needs_the_csrf_token(client: TestClient, engine: Engine) -> None:
    who = _log_in(client, authkit.issue(engine, [FINANCE_READ, EXCEPTIONS_ACT]))
    refused = client.delete("/v1/session")
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "csrf_failed")
    wrong = client.delete("/v1/session", headers={CSRF_HEADER: "0" * 43})
    assert wrong.json()["error"]["code"] == "csrf_failed"
    assert client.get("/v1/status").status_code == 200  # still logged in
    out = client.delete("/v1/session", headers={CSRF_HEADER: str(who["csrf_token"])})
    assert out.status_code == 200
    after = client.get("/v1/status")
    assert (after.status_code, after.json()["error"]["code"]) == (401, "not_authenticated")


def test_a_bearer_token_wins_over_a_cookie(client: TestClient, engine: Engine) -> None:
    _log_in(client, authkit.issue(engine, [FINANCE_READ]))
    reader = authkit.bearer(authkit.issue(engine, [FINANCE_READ], principal="bot"))
    # No CSRF token needed: a bearer token is not sent by a browser on its own.
    assert client.get("/v1/session", headers=reader).json()["principal"] == "bot"
    assert client.delete("/v1/session", headers=reader).status_code == 200


def test_idle_timeout_and_absolute_expiry(engine: Engine) -> None:
    token = authkit.issue(engine, [FINANCE_READ], now=NOW)
    opened = sessions.open_session(engine, token, NOW, idle_timeout=timedelta(minutes=30),
                                   lifetime=timedelta(hours=2))
    seen = NOW
    for _ in range(4):  # kept alive by use, every 25 minutes (past the idle timeout)
        seen += timedelta(minutes=25)
        assert sessions.session_for(engine, opened.secret, seen).principal.id == "test.client"
    with pytest.raises(NotAuthenticatedError, match="expired"):
        sessions.session_for(engine, opened.secret, NOW + timedelta(hours=2, minutes=1))
    idle = sessions.open_session(engine, token, NOW, idle_timeout=timedelta(minutes=30))
    with pytest.raises(NotAuthenticatedError, match="timed out"):
        sessions.session_for(engine, idle.secret, NOW + timedelta(minutes=31))


def test_a_session_ends_with_its_token(engine: Engine) -> None:
    made = authkit.issued(engine, [FINANCE_READ], now=NOW, lifetime=timedelta(hours=1))
    opened = sessions.open_session(engine, made.secret, NOW)
    assert opened.session.expires_at == NOW + timedelta(hours=1)  # never past the token's
    revocable = authkit.issued(engine, [FINANCE_READ], now=NOW)
    live = sessions.open_session(engine, revocable.secret, NOW)
    tokens.revoke(engine, authkit.ISSUER, revocable.token.id, NOW + timedelta(minutes=1))
    with pytest.raises(NotAuthenticatedError, match="revoked"):
        sessions.session_for(engine, live.secret, NOW + timedelta(minutes=2))


def test_the_scopes_are_the_tokens_at_each_request(engine: Engine) -> None:
    made = authkit.issued(engine, [FINANCE_READ], now=NOW)
    opened = sessions.open_session(engine, made.secret, NOW)
    successor = tokens.rotate(engine, authkit.ISSUER, made.token.id, NOW, timedelta(minutes=5))
    assert sessions.session_for(engine, opened.secret, NOW + timedelta(minutes=4)).principal
    with pytest.raises(NotAuthenticatedError, match="expired"):
        sessions.session_for(engine, opened.secret, NOW + timedelta(minutes=6))
    assert sessions.open_session(engine, successor.secret, NOW + timedelta(minutes=6))


def test_log_in_and_out_are_in_the_audit_trail(engine: Engine) -> None:
    token = authkit.issue(engine, [FINANCE_READ], principal="controller", now=NOW)
    opened = sessions.open_session(engine, token, NOW)
    sessions.close_session(engine, opened.secret, NOW + timedelta(minutes=1))
    sessions.close_session(engine, opened.secret, NOW + timedelta(minutes=2))  # once only
    with reading(engine) as conn:
        rows = conn.execute(select(trail.c.actor, trail.c.action)
                            .where(trail.c.object_type == "session")
                            .order_by(trail.c.seq)).all()
    assert [tuple(r) for r in rows] == [("controller", "session.open"),
                                        ("controller", "session.close")]
    with reading(engine) as conn:
        stored = conn.execute(select(session_rows.c.secret_hash)).scalars().all()
    assert opened.secret not in stored and tokens.digest(opened.secret) in stored
