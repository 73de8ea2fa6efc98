"""The auth schema's own tables (prefix `auth_`, own migrations and version table).

- `auth_tokens`: one row per API token. The token itself is never stored, only its SHA-256
  (`secret_hash`, unique: how a presented token is found). `scopes` is the sorted scopes,
  space-separated. A token works while `status` is `active`, `revoked_at` is NULL and
  `expires_at` is in the future; an admin token is `pending` until a second admin approves
  it, and can no longer be approved after `approval_expires_at`. A rotated token points at
  its successor (`rotated_to`) and its `expires_at` is cut to the end of the overlap.
- `auth_sessions`: one row per console session (`auth.sessions`): the SHA-256 of the cookie's
  secret, the token it was opened with (whose state and scopes every request reads again),
  when it was last seen, its idle timeout in seconds, its absolute expiry, and when it ended
  (log-out).
"""

from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, String, Table, Text

from finsync.dbtypes import NAMING_CONVENTION, UtcDateTime

metadata = MetaData(naming_convention=NAMING_CONVENTION)

tokens = Table(
    "auth_tokens", metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("principal", String(128), nullable=False),
    Column("scopes", Text, nullable=False),
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("status", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("approval_expires_at", UtcDateTime),
    Column("approved_at", UtcDateTime),
    Column("approved_by", String(128)),
    Column("last_used_at", UtcDateTime),
    Column("revoked_at", UtcDateTime),
    Column("revoked_by", String(128)),
    Column("rotated_from", String(32)),
    Column("rotated_to", String(32)),
)

sessions = Table(
    "auth_sessions", metadata,
    Column("id", String(32), primary_key=True),
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("token_id", String(32), nullable=False),
    Column("principal", String(128), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_seen_at", UtcDateTime, nullable=False),
    Column("idle_s", Integer, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("ended_at", UtcDateTime),
)
