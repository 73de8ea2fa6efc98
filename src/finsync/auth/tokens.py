"""API tokens: a secret that stands for one principal with the scopes it was given.

Rules:
- A token is `fsk_` and 43 random characters of [A-Za-z0-9] (256 bits): the prefix lets
  secret scanners and the log redaction recognise one. It is shown once, when it is created
  (or rotated in); only its SHA-256 is stored. A plain hash is enough for a secret of this
  entropy (no dictionary to try), and lets a presented token be found by an index lookup.
- A token has an owner principal (normalised), scopes (`principal.check_scope`), an expiry
  (every token expires: `DEFAULT_LIFETIME` unless told) and the time it was last used
  (written at most once per `LAST_USED_GRAIN`, so authenticating is a read, not a write per
  request).
- Only a principal holding `admin` creates, rotates, revokes or approves tokens.
- A token with the `admin` scope is `pending` until a second principal holding `admin`
  approves it: not its creator, not its owner (normalised ids, so a difference in letter
  case is the same person). A pending token cannot be approved after `APPROVAL_WINDOW`.
- Rotation issues a successor with the same owner, scopes and lifetime; the old token keeps
  working for the overlap window (never beyond its own expiry), then expires.
- Revocation takes effect at once: every request looks the token up, but intake's. An
  intake request may take its token from a look-up made less than a second before
  (`api.recent_tokens`), because intake's group commit looks up the tokens of a batch again
  (`active_ids`) just before storing it: an event is stored only under a token active then.
- Every change (create, approve, rotate, revoke) appends to the audit trail in the
  transaction that makes it, with the token's state before and after (never its secret).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping, Update, insert, select, update

from finsync.audit import trail
from finsync.audit.chain import Entry, timestamp
from finsync.auth.local import ForbiddenError, NotAuthenticatedError, require
from finsync.auth.principal import ADMIN, Principal, check_scope, normalise
from finsync.auth.tables import tokens
from finsync.domain.errors import DomainError
from finsync.storage.db import reading, transaction

PREFIX = "fsk_"
SECRET_CHARS = 43  # 43 * log2(62) ≈ 256 bits
_ALPHABET = string.ascii_letters + string.digits
_SHAPE = re.compile(rf"{PREFIX}[A-Za-z0-9]{{{SECRET_CHARS}}}")
DEFAULT_LIFETIME = timedelta(days=90)
APPROVAL_WINDOW = timedelta(hours=24)
LAST_USED_GRAIN = timedelta(minutes=1)
NAME_MAX = 128

ACTIVE = "active"
PENDING = "pending"


class TokenError(DomainError):
    code = "token_error"


class UnknownTokenError(TokenError):
    code = "unknown_token"


class TokenStateError(TokenError):
    """The token is not in a state that allows this (revoked, expired, pending, rotated)."""

    code = "token_state"


class SamePersonError(ForbiddenError):
    """An admin token approved by whoever asked for it, or by the principal it is for."""

    code = "same_person"


@dataclass(frozen=True, slots=True)
class Token:
    """A token's record, as listed: everything but the secret."""

    id: str
    name: str
    principal: str
    scopes: tuple[str, ...]
    status: str
    created_at: datetime
    created_by: str
    expires_at: datetime
    approval_expires_at: datetime | None = None
    approved_by: str | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    rotated_to: str | None = None

    def state(self, now: datetime) -> str:
        """What the token is now: active, pending, approval_expired, revoked or expired."""
        if self.revoked_at is not None:
            return "revoked"
        if self.status == PENDING:
            expired = self.approval_expires_at is not None and self.approval_expires_at <= now
            return "approval_expired" if expired else PENDING
        return "expired" if self.expires_at <= now else ACTIVE

    def as_principal(self) -> Principal:
        """Who the token stands for, with its scopes."""
        return Principal.of(self.principal, self.scopes)

    def as_json(self, now: datetime) -> dict[str, Any]:
        def at(value: datetime | None) -> str | None:
            return None if value is None else timestamp(value)
        return {"id": self.id, "name": self.name, "principal": self.principal,
                "scopes": list(self.scopes), "state": self.state(now),
                "created_at": at(self.created_at), "created_by": self.created_by,
                "expires_at": at(self.expires_at), "approved_by": self.approved_by,
                "approval_expires_at": at(self.approval_expires_at),
                "last_used_at": at(self.last_used_at), "revoked_at": at(self.revoked_at),
                "rotated_to": self.rotated_to}


@dataclass(frozen=True, slots=True)
class Issued:
    """A token just made, with its secret: the one time the secret is known."""

    token: Token
    secret: str


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create(engine: Engine, actor: Principal, name: str, principal_id: str,
           scopes: Iterable[str], now: datetime, lifetime: timedelta = DEFAULT_LIFETIME,
           reason: str = "") -> Issued:
    """A new token for `principal_id`; pending a second admin when it holds `admin`."""
    require(actor, ADMIN)
    granted = tuple(sorted({check_scope(s) for s in scopes}))
    if not granted:
        raise TokenError("a token needs at least one scope")
    if lifetime <= timedelta(0):
        raise TokenError("a token's lifetime must be positive")
    admin = ADMIN in granted
    with transaction(engine) as conn:
        issued = _insert(conn, _checked_name(name), normalise(principal_id), granted,
                         actor.id, now, now + lifetime, pending=admin)
        _audit(conn, actor, "token.create", None, issued.token, now,
               reason or f"token {issued.token.name!r} for {issued.token.principal}")
    return issued


def approve(engine: Engine, actor: Principal, token_id: str, now: datetime,
            reason: str = "") -> Token:
    """Activate a pending admin token: by an admin who neither asked for it nor owns it."""
    require(actor, ADMIN)
    with transaction(engine) as conn:
        before = _get(conn, token_id)
        if before.status != PENDING:
            raise TokenStateError(f"token {token_id} is not pending approval")
        state = before.state(now)
        if state != PENDING:
            raise TokenStateError(f"token {token_id} is {state}: create it again")
        if actor.same_person(before.created_by):
            raise SamePersonError(f"{actor.id} asked for token {token_id}: a second admin "
                                  "must approve it")
        if actor.same_person(before.principal):
            raise SamePersonError(f"token {token_id} is for {actor.id}: another admin must "
                                  "approve it")
        _changed(conn, update(tokens).where(tokens.c.id == token_id)
                 .where(tokens.c.status == PENDING)
                 .values(status=ACTIVE, approved_at=now, approved_by=actor.id), token_id)
        after = _get(conn, token_id)
        _audit(conn, actor, "token.approve", before, after, now,
               reason or f"admin token for {after.principal} approved")
    return after


def rotate(engine: Engine, actor: Principal, token_id: str, now: datetime,
           overlap: timedelta, reason: str = "") -> Issued:
    """A successor to `token_id` (same owner, scopes, lifetime); the old one works for
    `overlap` more (never past its own expiry)."""
    require(actor, ADMIN)
    if overlap < timedelta(0):
        raise TokenError("the overlap cannot be negative")
    with transaction(engine) as conn:
        old = _get(conn, token_id)
        state = old.state(now)
        if state != ACTIVE:
            raise TokenStateError(f"token {token_id} is {state}: only an active token rotates")
        if old.rotated_to is not None:
            raise TokenStateError(f"token {token_id} was rotated to {old.rotated_to}: "
                                  "rotate that one")
        issued = _insert(conn, old.name, old.principal, old.scopes, actor.id, now,
                         now + (old.expires_at - old.created_at), pending=False,
                         rotated_from=old.id)
        _changed(conn, update(tokens).where(tokens.c.id == token_id)
                 .where(tokens.c.rotated_to.is_(None)).where(tokens.c.revoked_at.is_(None))
                 .values(expires_at=min(old.expires_at, now + overlap),
                         rotated_to=issued.token.id), token_id)
        after = _get(conn, token_id)
        _audit(conn, actor, "token.rotate", old, after, now,
               reason or f"rotated to {issued.token.id}", extra={"successor": issued.token.id})
        _audit(conn, actor, "token.create", None, issued.token, now,
               f"successor of {token_id}")
    return issued


def revoke(engine: Engine, actor: Principal, token_id: str, now: datetime,
           reason: str = "") -> Token:
    """Stop `token_id` now."""
    require(actor, ADMIN)
    with transaction(engine) as conn:
        before = _get(conn, token_id)
        if before.revoked_at is not None:
            raise TokenStateError(f"token {token_id} is already revoked")
        _changed(conn, update(tokens).where(tokens.c.id == token_id)
                 .where(tokens.c.revoked_at.is_(None))
                 .values(revoked_at=now, revoked_by=actor.id), token_id)
        after = _get(conn, token_id)
        _audit(conn, actor, "token.revoke", before, after, now, reason or "revoked")
    return after


def listing(engine: Engine) -> list[Token]:
    with reading(engine) as conn:
        rows = conn.execute(select(tokens).order_by(tokens.c.created_at, tokens.c.id))
        return [_token(r) for r in rows.mappings()]


def principal_for(engine: Engine, token: str, now: datetime) -> Principal:
    """The principal `token` stands for, with the token's scopes; `NotAuthenticatedError`
    for a token that is malformed, unknown, pending, revoked or expired."""
    return active_token(engine, token, now).as_principal()


def active_token(engine: Engine, token: str, now: datetime) -> Token:
    """The record of `token`, active now (its use noted); `NotAuthenticatedError` for a
    token that is malformed, unknown, pending, revoked or expired."""
    if not _SHAPE.fullmatch(token):
        raise NotAuthenticatedError(f"not a finsync API token ({PREFIX}…)")
    with reading(engine) as conn:
        found = token_of(conn, digest(token))
    state = found.state(now)
    if state != ACTIVE:
        raise NotAuthenticatedError(f"API token {found.id} is {state}")
    if found.last_used_at is None or found.last_used_at <= now - LAST_USED_GRAIN:
        _touch(engine, found.id, now)
    return found


def active_ids(engine: Engine, ids: Collection[str], now: datetime) -> set[str]:
    """Which of the tokens `ids` are active now, in one read."""
    if not ids:
        return set()
    with reading(engine) as conn:
        return active_ids_in(conn, ids, now)


def active_ids_in(conn: Connection, ids: Collection[str], now: datetime) -> set[str]:
    """`active_ids` in the caller's transaction (intake's group commit: the batch's)."""
    if not ids:
        return set()
    rows = conn.execute(select(tokens).where(tokens.c.id.in_(sorted(ids)))).mappings()
    return {t.id for t in map(_token, rows) if t.state(now) == ACTIVE}


def token_of(conn: Connection, key: str, *, by_id: bool = False) -> Token:
    """The token whose secret hashes to `key` (by its id with `by_id`);
    `NotAuthenticatedError` when there is none."""
    column = tokens.c.id if by_id else tokens.c.secret_hash
    row = conn.execute(select(tokens).where(column == key)).mappings().first()
    if row is None:
        raise NotAuthenticatedError("unknown API token")
    return _token(row)


def _changed(conn: Connection, statement: Update, token_id: str) -> None:
    """Run a conditional update of one token. Two admins acting on it at once (PostgreSQL
    reads committed rows) cannot both win: the loser's transaction rolls back."""
    if conn.execute(statement).rowcount != 1:
        raise TokenStateError(f"token {token_id} changed meanwhile: look again "
                              "(finsync tokens list)")


def _touch(engine: Engine, token_id: str, now: datetime) -> None:
    # A write once a grain per token; a concurrent request may write it too (harmless).
    with transaction(engine) as conn:
        conn.execute(update(tokens).where(tokens.c.id == token_id)
                     .where((tokens.c.last_used_at.is_(None))
                            | (tokens.c.last_used_at <= now - LAST_USED_GRAIN))
                     .values(last_used_at=now))


def _insert(conn: Connection, name: str, principal: str, scopes: tuple[str, ...],
            created_by: str, now: datetime, expires_at: datetime, *, pending: bool,
            rotated_from: str | None = None) -> Issued:
    secret = PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(SECRET_CHARS))
    token_id = f"tok_{secrets.token_hex(8)}"
    conn.execute(insert(tokens).values(
        id=token_id, name=name, principal=principal, scopes=" ".join(scopes),
        secret_hash=digest(secret), status=PENDING if pending else ACTIVE,
        created_at=now, created_by=created_by, expires_at=expires_at,
        approval_expires_at=now + APPROVAL_WINDOW if pending else None,
        rotated_from=rotated_from))
    return Issued(_get(conn, token_id), secret)


def _checked_name(name: str) -> str:
    stripped = name.strip()
    if not stripped or len(stripped) > NAME_MAX or not stripped.isprintable():
        raise TokenError(f"a token's name is 1-{NAME_MAX} printable characters")
    return stripped


def _get(conn: Connection, token_id: str) -> Token:
    row = conn.execute(select(tokens).where(tokens.c.id == token_id)).mappings().first()
    if row is None:
        raise UnknownTokenError(f"no token {token_id[:40]!r}")
    return _token(row)


def _token(row: RowMapping) -> Token:
    return Token(row["id"], row["name"], row["principal"], tuple(row["scopes"].split()),
                 row["status"], row["created_at"], row["created_by"], row["expires_at"],
                 row["approval_expires_at"], row["approved_by"], row["last_used_at"],
                 row["revoked_at"], row["rotated_to"])


def _audit(conn: Connection, actor: Principal, action: str, before: Token | None,
           after: Token, now: datetime, reason: str,
           extra: dict[str, Any] | None = None) -> None:
    shown_before = None if before is None else before.as_json(now)
    trail.append(conn, Entry(actor.id, action, "token", after.id, reason, before=shown_before,
                             after={**after.as_json(now), **(extra or {})}), now)
