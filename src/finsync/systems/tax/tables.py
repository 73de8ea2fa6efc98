"""The tax engine's own tables (prefix `tax_`, own migrations and version table).

Rules:
- Master data (`tax_jurisdictions`, `tax_rates`, `tax_sellers`) is loaded from the tax
  configuration file at start-up and rewritten whole when it differs.
- A committed transaction is one row per document (its id unique: the engine's tracking
  row for that document) and one row per jurisdiction line; money as integer minor units
  with the document's currency; rates as decimal strings.
- `tax_receipts` keeps the answer given under each delivery key.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
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

from finsync.dbtypes import NAMING_CONVENTION, UtcDateTime

metadata = MetaData(naming_convention=NAMING_CONVENTION)

jurisdictions = Table(
    "tax_jurisdictions", metadata,
    Column("code", String(16), primary_key=True),
    Column("tax_type", String(16), nullable=False),
    Column("rounding", String(16), nullable=False),
    Column("levies_tax", Boolean, nullable=False),
    Column("by_region", Boolean, nullable=False),
    Column("not_taxable", Text, nullable=False),  # JSON list of tax codes, sorted
)

rates = Table(
    "tax_rates", metadata,
    Column("jurisdiction", String(16), nullable=False),
    Column("tax_code", String(64), nullable=False),
    Column("effective_from", Date, nullable=False),
    Column("rate", String(32), nullable=False),
    PrimaryKeyConstraint("jurisdiction", "tax_code", "effective_from"),
)

sellers = Table(
    "tax_sellers", metadata,
    Column("legal_entity", String(64), primary_key=True),
    Column("country", String(2), nullable=False),
)

certificates = Table(
    "tax_certificates", metadata,
    Column("id", String(255), primary_key=True),
    Column("customer_id", String(255), nullable=False),
    Column("jurisdiction", String(16), nullable=False),
    Column("valid_from", Date, nullable=False),
    Column("valid_to", Date, nullable=True),
    Column("revoked_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Index(None, "customer_id"),
)

transactions = Table(
    "tax_transactions", metadata,
    Column("document_id", String(255), primary_key=True),
    Column("kind", String(16), nullable=False),        # invoice | credit_memo
    Column("invoice_id", String(255), nullable=True),  # a credit memo's invoice
    Column("reason", String(64), nullable=True),       # a credit memo's reason
    Column("legal_entity", String(64), nullable=False),
    Column("customer_id", String(255), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("issue_date", Date, nullable=False),
    Column("body_hash", String(64), nullable=False),
    Column("status", String(16), nullable=False),      # committed | voided
    Column("voided_by", String(255), nullable=True),
    Column("committed_at", UtcDateTime, nullable=False),
    Index(None, "legal_entity", "issue_date"),
)

transaction_lines = Table(
    "tax_transaction_lines", metadata,
    Column("document_id", String(255), nullable=False),
    Column("detail_no", Integer, nullable=False),
    Column("line_id", String(255), nullable=False),
    Column("jurisdiction", String(32), nullable=False),
    Column("tax_type", String(16), nullable=False),
    Column("rate", String(32), nullable=False),
    Column("treatment", String(16), nullable=False),
    Column("taxable_minor", BigInteger, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    PrimaryKeyConstraint("document_id", "detail_no"),
)

receipts = Table(
    "tax_receipts", metadata,
    Column("key", String(512), primary_key=True),
    Column("document_id", String(255), nullable=False),
    Column("detail", Text, nullable=False),  # JSON object of strings
    Column("recorded_at", UtcDateTime, nullable=False),
)
