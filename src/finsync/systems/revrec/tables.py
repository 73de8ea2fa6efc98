"""The revenue engine's own tables (prefix `revrec_`, own migrations and version table).

- `revrec_contracts`: one row per revenue contract, its state serialised (`serial`) and a
  row version for optimistic concurrency.
- `revrec_applied_events`: one tracking row per event applied to a contract (unique), written
  in the same transaction as the state.
- `revrec_receipts`: one row per idempotency key: what the call was, a hash of its body and
  the answer given, so the same key again returns the first answer.
- `revrec_documents`: which revenue contract an invoice belongs to (credit memos name only
  their invoice).
"""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, MetaData, PrimaryKeyConstraint, String, Table, Text

from finsync.dbtypes import NAMING_CONVENTION

metadata = MetaData(naming_convention=NAMING_CONVENTION)

contracts = Table(
    "revrec_contracts", metadata,
    Column("id", String(64), primary_key=True),
    Column("subscription_contract_id", String(255), nullable=False, unique=True),
    Column("legal_entity", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("contract_version", Integer, nullable=False),
    Column("row_version", Integer, nullable=False),
    Column("state", Text, nullable=False),
    Index(None, "legal_entity"),
)

applied_events = Table(
    "revrec_applied_events", metadata,
    Column("revenue_contract_id", String(64), nullable=False),
    Column("event_id", String(255), nullable=False),
    PrimaryKeyConstraint("revenue_contract_id", "event_id"),
)

receipts = Table(
    "revrec_receipts", metadata,
    Column("idempotency_key", String(255), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("subject", String(255), nullable=False),
    Column("body_hash", String(64), nullable=False),
    Column("answer", Text, nullable=False),
)

documents = Table(
    "revrec_documents", metadata,
    Column("document_id", String(255), primary_key=True),
    Column("revenue_contract_id", String(64), nullable=False),
)
