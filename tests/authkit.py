"""API tokens for tests that call the HTTP API: real tokens in the test's database."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from finsync.auth import tokens
from finsync.auth.principal import ADMIN, ANY_SOURCE, FIXED_SCOPES, Principal, events_write
from finsync.domain.clock import utc_now

# Every scope there is: what an existing API test gets, so it tests what it tested before.
EVERY_SCOPE = (*sorted(FIXED_SCOPES), events_write(ANY_SOURCE))
ISSUER = Principal.of("test.issuer", [ADMIN])
SECOND = Principal.of("test.second", [ADMIN])


def issued(engine: Engine, scopes: Iterable[str] = EVERY_SCOPE, *,
           principal: str = "test.client", now: datetime | None = None,
           lifetime: timedelta = tokens.DEFAULT_LIFETIME) -> tokens.Issued:
    """A working token (an admin one approved by a second admin) holding `scopes`."""
    at = now or utc_now()
    made = tokens.create(engine, ISSUER, "test", principal, scopes, at, lifetime)
    if made.token.status == tokens.PENDING:
        tokens.approve(engine, SECOND, made.token.id, at)
    return made


def issue(engine: Engine, scopes: Iterable[str] = EVERY_SCOPE, *,
          principal: str = "test.client", now: datetime | None = None,
          lifetime: timedelta = tokens.DEFAULT_LIFETIME) -> str:
    """The secret of `issued`."""
    return issued(engine, scopes, principal=principal, now=now, lifetime=lifetime).secret


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def client(app: FastAPI, engine: Engine, scopes: Iterable[str] = EVERY_SCOPE,
           **kwargs: Any) -> TestClient:
    """A test client whose every request carries a token holding `scopes`."""
    headers = {**bearer(issue(engine, scopes)), **kwargs.pop("headers", {})}
    return TestClient(app, headers=headers, **kwargs)
