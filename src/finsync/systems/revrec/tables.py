"""The revenue engine's own tables (prefix `revrec_`, own migrations and version table).

- `revrec_contracts`: one row per revenue contract, its state serialised (`serial`) and a
  row version for optimistic concurrency.
- `revrec_applied_events`: one tracking row per event applied to a contract (unique), written
  in the same transaction as the state.
- `revrec_receipts`: one row per idempotency key: what the call was, a hash of its body and
  the answer given, so the same key again returns the first answer.
- `revrec_documents`: which revenue contract an invoice belongs to (credit memos name only
  their invoice).
- Positions (`position`), rewritten with the state in the same transaction, so that reports
  aggregate rows in SQL and never decode a state: `revrec_positions` (the contract's
  balances at each month start of its span, minor units), `revrec_obligation_positions`
  (each obligation's recognised revenue there), `revrec_obligations` (schedule id, version
  and allocated price of each obligation, by its place in the state) and `revrec_billings`
  (every billing and credit). The contract row holds the span (`positions_from`,
  `positions_to`) and the transaction price; a NULL span marks a contract without rows
  (read from its state).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

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
    Column("customer_id", String(255)),
    Column("positions_from", Date),
    Column("positions_to", Date),
    Column("transaction_price_minor", BigInteger),
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

positions = Table(
    "revrec_positions", metadata,
    Column("revenue_contract_id", String(64), nullable=False),
    Column("day", Date, nullable=False),
    Column("billed_minor", BigInteger, nullable=False),
    Column("recognised_minor", BigInteger, nullable=False),
    Column("deferred_revenue_minor", BigInteger, nullable=False),
    Column("contract_asset_minor", BigInteger, nullable=False),
    Column("unbilled_receivable_minor", BigInteger, nullable=False),
    PrimaryKeyConstraint("revenue_contract_id", "day"),
    Index(None, "day"),  # the entity waterfall reads a range of month starts
)

obligation_positions = Table(
    "revrec_obligation_positions", metadata,
    Column("revenue_contract_id", String(64), nullable=False),
    Column("ordinal", Integer, nullable=False),
    Column("day", Date, nullable=False),
    Column("recognised_minor", BigInteger, nullable=False),
    PrimaryKeyConstraint("revenue_contract_id", "ordinal", "day"),
)

obligations = Table(
    "revrec_obligations", metadata,
    Column("revenue_contract_id", String(64), nullable=False),
    Column("ordinal", Integer, nullable=False),
    Column("obligation_id", String(255), nullable=False),
    Column("schedule_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("allocated_minor", BigInteger, nullable=False),
    PrimaryKeyConstraint("revenue_contract_id", "ordinal"),
)

billings = Table(
    "revrec_billings", metadata,
    Column("revenue_contract_id", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("document_id", String(255), nullable=False),
    Column("obligation_id", String(255), nullable=False),
    Column("issued_on", Date, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    PrimaryKeyConstraint("revenue_contract_id", "seq"),
)

event_baselines = Table(
    "revrec_event_baselines", metadata,
    Column("revenue_contract_id", String(64), primary_key=True),
    Column("state", Text, nullable=False),
)

events = Table(
    "revrec_events", metadata,
    Column("revenue_contract_id", String(64), nullable=False),
    Column("event_id", String(255), nullable=False),
    Column("effective_date", Date, nullable=False),  # the canonical-order key (`order`)
    Column("precedence", Integer, nullable=False),
    Column("contract_version", Integer, nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("body", Text, nullable=False),
    PrimaryKeyConstraint("revenue_contract_id", "event_id"),  # a contract's rows: its prefix
)

# -- period journals (`journal_store`) ------------------------------------------------------
# Every saved change, in order: which contract and event (the journals find what changed
# after a period's journal was stored).
changes = Table(
    "revrec_changes", metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("revenue_contract_id", String(64), nullable=False),
    Column("event_id", String(255), nullable=False),
    Index(None, "revenue_contract_id"),
)

# Contracts whose journals split contra revenue or a refund liability: read from the state.
split_contracts = Table(
    "revrec_split_contracts", metadata,
    Column("revenue_contract_id", String(64), primary_key=True),
)

# A period's journal as it was answered to the close, never recomputed.
journals = Table(
    "revrec_journals", metadata,
    Column("id", String(64), primary_key=True),
    Column("legal_entity", String(64), nullable=False),
    Column("period_start", Date, nullable=False),
    Column("period_end", Date, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("entry", Text, nullable=False),
    Column("request_id", String(255), nullable=False),
    Column("change_seq", BigInteger, nullable=False),  # the last change it saw
    Index(None, "legal_entity", "period_start", "currency", unique=True),
)

# What each stored journal booked per contract, by the period the amounts belong to (its
# own, or the closed period an adjustment catches up), in minor units.
journal_movements = Table(
    "revrec_journal_movements", metadata,
    Column("journal_id", String(64), nullable=False),
    Column("legal_entity", String(64), nullable=False),
    Column("revenue_contract_id", String(64), nullable=False),
    Column("adjusts_start", Date, nullable=False),
    Column("revenue_minor", BigInteger, nullable=False),
    Column("contra_minor", BigInteger, nullable=False),
    Column("deferred_revenue_minor", BigInteger, nullable=False),
    Column("refund_liability_minor", BigInteger, nullable=False),
    Column("contract_asset_minor", BigInteger, nullable=False),
    Column("unbilled_receivable_minor", BigInteger, nullable=False),
    PrimaryKeyConstraint("journal_id", "revenue_contract_id", "adjusts_start"),
    Index(None, "legal_entity", "revenue_contract_id"),
)
