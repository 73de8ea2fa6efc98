"""The two-person controls' own tables (prefix `controls_`, own migrations and version table).

- `controls_requests`: one row per change that waits for a second principal: what (`kind`,
  `subject`, `params`), who asked and why, until when it may be approved, and the decision.
- `controls_config`: the fingerprints of the controlled configuration sections in force,
  in the order they were approved (the last one is current) with the sections themselves,
  so that `finsync config show` can say what changed.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Table, Text

from finsync.dbtypes import NAMING_CONVENTION, UtcDateTime

metadata = MetaData(naming_convention=NAMING_CONVENTION)

requests = Table(
    "controls_requests", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("subject", String(255), nullable=False),
    Column("params", Text, nullable=False),  # canonical JSON
    Column("needs", String(255), nullable=False),  # the approver's scopes, space-separated
    Column("reason", Text, nullable=False),
    Column("requested_by", String(128), nullable=False),
    Column("requested_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("status", String(16), nullable=False),
    Column("decided_by", String(128)),
    Column("decided_at", UtcDateTime),
    Column("decision_note", Text),
    Index("ix_controls_requests_kind_status", "kind", "status"),
)

config = Table(
    "controls_config", metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("fingerprint", String(64), nullable=False),
    Column("sections", Text, nullable=False),  # canonical JSON of the controlled sections
    Column("adopted_at", UtcDateTime, nullable=False),
    Column("adopted_by", String(128), nullable=False),
    Column("request_id", Integer),  # NULL: adopted as the first configuration
)
