"""The ledger's own tables (prefix `ledger_`, own migrations and version table).

Money is stored as integer minor units with its currency; an entry's idempotency key is
unique, so the entry row is also the ledger's tracking row for that key.
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
    text,
)

from finsync.dbtypes import NAMING_CONVENTION, Serial, UtcDateTime

metadata = MetaData(naming_convention=NAMING_CONVENTION)


entities = Table(
    "ledger_entities", metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("functional_currency", String(3), nullable=False),
    Column("account_map", Text, nullable=False),
)

accounts = Table(
    "ledger_accounts", metadata,
    Column("entity", String(64), nullable=False),
    Column("code", String(32), nullable=False),
    Column("name", String(255), nullable=False),
    Column("type", String(16), nullable=False),
    Column("role", String(32)),
    PrimaryKeyConstraint("entity", "code"),
)

periods = Table(
    "ledger_periods", metadata,
    Column("entity", String(64), nullable=False),
    Column("name", String(7), nullable=False),
    Column("start", Date, nullable=False),
    Column("end", Date, nullable=False),
    Column("status", String(16), nullable=False),
    PrimaryKeyConstraint("entity", "name"),
)

period_log = Table(
    "ledger_period_log", metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("entity", String(64), nullable=False),
    Column("period", String(7), nullable=False),
    Column("from_status", String(16), nullable=False),
    Column("to_status", String(16), nullable=False),
    Column("actor", String(255), nullable=False),
    Column("reason", Text),
    Column("at", UtcDateTime, nullable=False),
)

entries = Table(
    "ledger_entries", metadata,
    Column("id", String(64), primary_key=True),
    Column("entity", String(64), nullable=False),
    Column("posting_date", Date, nullable=False),
    Column("period", String(7), nullable=False),
    Column("memo", Text, nullable=False),
    Column("idempotency_key", String(255), nullable=False, unique=True),
    Column("body_hash", String(64), nullable=False),
    Column("document_kind", String(32), nullable=False),
    Column("document_id", String(255)),
    Column("correlation_id", String(255), index=True),
    Column("reverses", String(64)),
    Column("source_refs", Text, nullable=False),
    Column("approved", Boolean, nullable=False),
    Column("posted_at", UtcDateTime, nullable=False),
    Index("ix_ledger_entries_entity_date", "entity", "posting_date"),
)

lines = Table(
    "ledger_lines", metadata,
    Column("entry_id", String(64), nullable=False),
    Column("line_no", Integer, nullable=False),
    Column("entity", String(64), nullable=False),
    Column("posting_date", Date, nullable=False),
    Column("account", String(32), nullable=False),
    Column("side", String(6), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("txn_amount_minor", BigInteger),
    Column("txn_currency", String(3)),
    Column("customer", String(255)),
    Column("dimensions", Text, nullable=False),
    # The line's `jurisdiction` dimension (a tax payable line of a tax breakdown), so that
    # tax payable per jurisdiction is read in SQL; null on other lines (ledger_0006).
    Column("jurisdiction", String(32)),
    PrimaryKeyConstraint("entry_id", "line_no"),
    # Side, amounts and transaction currency too, so that balances (trial balance,
    # roll-forward, and per currency for reconciliation) add up from the index alone, never
    # reading the lines themselves (ledger_0008).
    Index("ix_ledger_lines_account", "entity", "account", "posting_date", "side",
          "amount_minor", "txn_currency", "txn_amount_minor"),
)

items = Table(
    "ledger_items", metadata,
    Column("entity", String(64), nullable=False),
    Column("id", String(255), nullable=False),
    Column("customer", String(255), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("document_id", String(255), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("original_minor", BigInteger, nullable=False),
    Column("open_minor", BigInteger, nullable=False),
    Column("booked_currency", String(3), nullable=False),
    Column("booked_open_minor", BigInteger, nullable=False),
    Column("posting_date", Date, nullable=False),
    Column("due_date", Date, nullable=False),
    Column("entry_id", String(64), nullable=False, index=True),
    PrimaryKeyConstraint("entity", "id"),
    Index("ix_ledger_items_customer", "entity", "customer", "kind"),
    # Aging reads what is open now (few of all items, once most are paid) by this index,
    # and what was open on an earlier day through the settlements posted since.
    Index("ix_ledger_items_open", "entity", "posting_date",
          sqlite_where=text("open_minor <> 0"), postgresql_where=text("open_minor <> 0")),
)

settlements = Table(
    "ledger_settlements", metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("entity", String(64), nullable=False),
    Column("item_id", String(255), nullable=False),
    Column("entry_id", String(64), nullable=False, index=True),
    Column("applied_minor", BigInteger, nullable=False),
    Column("relieved_minor", BigInteger, nullable=False),
    Column("posting_date", Date, nullable=False),
    Index("ix_ledger_settlements_item", "entity", "item_id", "posting_date"),
    Index("ix_ledger_settlements_date", "entity", "posting_date"),
)

fx_rates = Table(
    "ledger_fx_rates", metadata,
    Column("base", String(3), nullable=False),
    Column("quote", String(3), nullable=False),
    Column("effective", Date, nullable=False),
    Column("rate", String(40), nullable=False),
    PrimaryKeyConstraint("base", "quote", "effective"),
)

# The ERP's customer master (`parties`): one row a customer, as the customer master's
# latest version says (ledger_0007). The street lines are kept as a JSON list.
parties = Table(
    "ledger_parties", metadata,
    Column("id", String(255), primary_key=True),  # the canonical customer id
    Column("legal_entity", String(255), nullable=False),
    Column("name", Text, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("country", Text, nullable=False),
    Column("region", Text),
    Column("tax_id", Text),
    Column("street", Text),
    Column("city", Text),
    Column("postal_code", Text),
    Column("version", Integer, nullable=False),
    # The delivery that wrote this version (a redelivery finds its receipt by it).
    Column("delivery_key", String(255), nullable=False, index=True),
    Column("updated_at", UtcDateTime, nullable=False),
)
