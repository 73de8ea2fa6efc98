"""Console sessions: an API token exchanged for a session cookie.

Rules:
- A person logs in to the console with an API token (`open_session`); the token is checked
  exactly as a bearer token is, and the session then stands for the token's principal with
  the token's scopes *as they are at each request*: revoking, expiring or rotating the token
  out ends its sessions at once (every request looks the token up; nothing is cached).
- The cookie holds a random secret (`fss_` and 43 characters, 256 bits); only its SHA-256 is
  stored. The CSRF token is derived from that secret (`csrf_for`), so it needs no storage
  and is useless without the cookie.
- A session ends when it is idle for longer than its idle timeout (`last_seen_at`, written
  at most once per `SEEN_GRAIN`), at its absolute expiry (never past its token's), or at
  log-out. Opening and closing are written to the audit trail with the principal.
"""

from __future__ import annotations

import hashlib
import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, insert, select, update

from finsync.audit import trail
from finsync.audit.chain import Entry
from finsync.auth.local import NotAuthenticatedError
from finsync.auth.principal import Principal
from finsync.auth.tables import sessions
from finsync.auth.tokens import ACTIVE, digest, principal_for, token_of
from finsync.storage.db import reading, transaction

PREFIX = "fss_"
SECRET_CHARS = 43
_ALPHABET = string.ascii_letters + string.digits
IDLE_TIMEOUT = timedelta(minutes=30)
ABSOLUTE_LIFETIME = timedelta(hours=12)
SEEN_GRAIN = timedelta(seconds=30)


@dataclass(frozen=True, slots=True)
class Session:
    """A live session: who it stands for now, and the CSRF token its actions must carry."""

    id: str
    principal: Principal
    csrf: str
    idle_timeout: timedelta
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Opened:
    """A session just opened, with the secret the cookie carries (known only now)."""

    session: Session
    secret: str


def csrf_for(secret: str) -> str:
    """The CSRF token of the session whose cookie holds `secret`."""
    return hashlib.sha256(f"csrf:{secret}".encode()).hexdigest()[:43]


def open_session(engine: Engine, token: str, now: datetime, *,
                 idle_timeout: timedelta = IDLE_TIMEOUT,
                 lifetime: timedelta = ABSOLUTE_LIFETIME) -> Opened:
    """A session for the principal `token` stands for; `NotAuthenticatedError` as for a
    bearer token that is malformed, unknown, pending, revoked or expired."""
    principal = principal_for(engine, token, now)
    secret = PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(SECRET_CHARS))
    session_id = f"ses_{secrets.token_hex(8)}"
    with transaction(engine) as conn:
        held = token_of(conn, digest(token))
        expires_at = min(now + lifetime, held.expires_at)
        conn.execute(insert(sessions).values(
            id=session_id, secret_hash=digest(secret), token_id=held.id,
            principal=principal.id, created_at=now, last_seen_at=now,
            idle_s=int(idle_timeout.total_seconds()), expires_at=expires_at))
        trail.append(conn, Entry(principal.id, "session.open", "session", session_id,
                                 "console log-in", after={"token": held.id,
                                                          "expires_at": expires_at.isoformat()}),
                     now)
    return Opened(Session(session_id, principal, csrf_for(secret), idle_timeout, expires_at),
                  secret)


def session_for(engine: Engine, secret: str, now: datetime) -> Session:
    """The live session whose cookie holds `secret`, standing for its token's principal
    and scopes now; `NotAuthenticatedError` when it is unknown, ended, idle too long,
    expired, or its token no longer works."""
    if not secret.startswith(PREFIX) or len(secret) != len(PREFIX) + SECRET_CHARS:
        raise NotAuthenticatedError("not a finsync console session")
    with reading(engine) as conn:
        row = conn.execute(select(sessions).where(sessions.c.secret_hash == digest(secret))
                           ).mappings().first()
        if row is None or row["ended_at"] is not None:
            raise NotAuthenticatedError("the console session has ended: log in again")
        held = token_of(conn, row["token_id"], by_id=True)
    idle = timedelta(seconds=row["idle_s"])
    if row["last_seen_at"] + idle <= now:
        raise NotAuthenticatedError("the console session timed out: log in again")
    if row["expires_at"] <= now:
        raise NotAuthenticatedError("the console session expired: log in again")
    state = held.state(now)
    if state != ACTIVE:
        raise NotAuthenticatedError(f"the session's API token {held.id} is {state}")
    if row["last_seen_at"] <= now - SEEN_GRAIN:
        with transaction(engine) as conn:
            conn.execute(update(sessions).where(sessions.c.id == row["id"])
                         .values(last_seen_at=now))
    return Session(row["id"], Principal.of(held.principal, held.scopes), csrf_for(secret),
                   idle, row["expires_at"])


def close_session(engine: Engine, secret: str, now: datetime) -> None:
    """Log out: the session whose cookie holds `secret` ends now (no error if it had)."""
    with transaction(engine) as conn:
        row = conn.execute(select(sessions.c.id, sessions.c.principal)
                           .where(sessions.c.secret_hash == digest(secret))
                           .where(sessions.c.ended_at.is_(None))).first()
        if row is None:
            return
        conn.execute(update(sessions).where(sessions.c.id == row.id).values(ended_at=now))
        trail.append(conn, Entry(row.principal, "session.close", "session", row.id,
                                 "console log-out"), now)
