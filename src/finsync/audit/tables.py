"""The audit trail's own tables (prefix `audit_`, own migrations and version table).

- `audit_trail`: one row per audited action, append-only. `seq` is dense from 1; `hash`
  chains each row to the previous one (`chain.py`), so an edited, deleted, inserted or
  reordered row breaks the chain at that row.
- `audit_checkpoints`: signed statements "the record at `seq` has hash `hash`" (seq 0: the
  empty trail), Ed25519 over `chain.checkpoint_message`, with the signer's public key
  (hex) so that a rotated key's checkpoints still name theirs. Append-only too.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, MetaData, String, Table, Text

from finsync.dbtypes import NAMING_CONVENTION, Serial, UtcDateTime

metadata = MetaData(naming_convention=NAMING_CONVENTION)

trail = Table(
    "audit_trail", metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", UtcDateTime, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("object_type", String(64), nullable=False),
    Column("object_id", String(255), nullable=False),
    Column("before", Text),  # canonical JSON, or NULL
    Column("after", Text),
    Column("reason", Text, nullable=False),
    Column("correlation_id", String(255)),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

checkpoints = Table(
    "audit_checkpoints", metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("seq", BigInteger, nullable=False, index=True),
    Column("hash", String(64), nullable=False),
    Column("signed_at", UtcDateTime, nullable=False),
    Column("reason", String(255), nullable=False),  # daily | close:<entity>:<YYYY-MM> | manual
    Column("public_key", String(64), nullable=False),
    Column("signature", String(128), nullable=False),
)
