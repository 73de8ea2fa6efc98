"""The billing platform's own tables (prefix `billing_`, own migrations and version table).

Rules:
- Money is stored as integer minor units beside its currency; catalogue unit prices, which may
  be finer than a minor unit (a usage price of 0.0025), are decimal strings.
- Issued documents (invoices, credit memos, payments, refunds, usage) are inserted once and
  never updated; `position` keeps the order the core issued them in, which the core relies on
  (numbering, newest-first crediting). On PostgreSQL it defaults to a sequence of its own
  (migration billing_0002; not declared here, as SQLite has none).
- Each document row keeps its canonical JSON `body` (read back with the domain's decoders);
  the other columns are there to query by.
- A subscription's mutable billing position is one row; every contract version, with the
  amendment that made it and its machine-readable diff, is a row of its own.
- A command locks only the rows of the customer and subscription it changes (see
  `aggregate`); `billing_head` is a single row that keeps the catalogue's hash, written
  only when the configured catalogue changes.
- `billing_document_numbers` holds the last number of each (kind, legal entity): gapless
  numbering without counting documents.
- `next_step_on` is the day the billing clock next has something to do for a subscription
  (NULL: nothing, ever), so a clock run reads only the subscriptions that are due.
- Usage is rated once per usage line and period: `(contract_id, line_id, period_start)` is
  unique in `billing_usage_charges`.
- An invoice billing could not tax is a row of `billing_held_invoices` (its latest version,
  `invoice_id` set once released; unnumbered, so invoice numbers stay gapless), in the order
  held (`seq`).
- `billing_line_taxes` keeps each invoice and credit memo line's jurisdiction lines (rows
  keyed by the document and its line number), so tax per jurisdiction is read in sets;
  documents stored before breakdowns have none.
- `billing_outbox` holds the canonical envelopes, written in the transaction of the change.
"""

from __future__ import annotations

from typing import Any

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

from finsync.dbtypes import NAMING_CONVENTION, Serial, UtcDateTime

metadata = MetaData(naming_convention=NAMING_CONVENTION)

_ID = 255


def _id(name: str, *, primary_key: bool = False, nullable: bool | None = None,
        index: bool = False) -> Column[str]:
    """An id column; nullable unless it is (part of) the key or says otherwise."""
    return Column(name, String(_ID), primary_key=primary_key, index=index,
                  nullable=not primary_key if nullable is None else nullable)


head = Table(
    "billing_head", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("revision", BigInteger, nullable=False),
    Column("catalog_hash", String(64), nullable=False),
)

products = Table(
    "billing_products", metadata,
    _id("id", primary_key=True),
    Column("name", String(255), nullable=False),
    Column("tax_code", String(64), nullable=False),
    Column("revenue_pattern", String(64), nullable=False),
)

prices = Table(
    "billing_prices", metadata,
    _id("id", primary_key=True),
    _id("product_id", nullable=False),
    Column("model", String(16), nullable=False),
    Column("unit_amount", String(40), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("frequency", String(16), nullable=False),
    Column("included_quantity", BigInteger, nullable=False),
    Column("timing", String(16), nullable=False),
    Column("tiers", Text, nullable=False),
    Column("tax_behavior", String(16), nullable=False, server_default="exclusive"),
)

customers = Table(
    "billing_customers", metadata,
    _id("id", primary_key=True),
    Column("name", String(255), nullable=False),
    Column("legal_entity", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("billing_country", String(2), nullable=False),
    Column("version", Integer, nullable=False),
    Column("body", Text, nullable=False),
)

subscriptions = Table(
    "billing_subscriptions", metadata,
    _id("id", primary_key=True),
    Column("position", Integer, nullable=False, unique=True),
    _id("customer_id", nullable=False, index=True),
    Column("legal_entity", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("version", Integer, nullable=False),
    Column("status", String(32), nullable=False),
    _id("correlation_id", nullable=False),
    Column("anchor", Date, nullable=False),
    Column("term_months", Integer, nullable=False),
    Column("auto_renew", Boolean, nullable=False),
    Column("arrears_months", Integer, nullable=False),
    Column("billed_through", Date, nullable=False),
    Column("arrears_through", Date, nullable=False),
    Column("cycle_start", Date),
    Column("cycle_end", Date),
    Column("cycle_months", Integer),
    Column("prepaid_balance_minor", BigInteger, nullable=False),
    Column("renewal_lines", Text, nullable=False),
    Column("next_step_on", Date, index=True),
)

document_numbers = Table(
    "billing_document_numbers", metadata,
    Column("kind", String(16), nullable=False),
    Column("legal_entity", String(64), nullable=False),
    Column("last_number", BigInteger, nullable=False),
    PrimaryKeyConstraint("kind", "legal_entity"),
)

contract_versions = Table(
    "billing_contract_versions", metadata,
    _id("contract_id", nullable=False),
    Column("version", Integer, nullable=False),
    Column("effective_date", Date, nullable=False),
    _id("amendment_id"),
    Column("reason", String(255)),
    Column("changes", Text, nullable=False),
    Column("contract", Text, nullable=False),
    PrimaryKeyConstraint("contract_id", "version"),
)

invoices = Table(
    "billing_invoices", metadata,
    _id("id", primary_key=True),
    Column("position", Integer, nullable=False, unique=True),
    Column("number", String(64), nullable=False, unique=True),
    _id("customer_id", nullable=False, index=True),
    _id("contract_id", index=True),
    Column("contract_version", Integer),
    Column("legal_entity", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("issue_date", Date, nullable=False),
    Column("due_date", Date, nullable=False),
    Column("subtotal_minor", BigInteger, nullable=False),
    Column("tax_total_minor", BigInteger, nullable=False),
    Column("total_minor", BigInteger, nullable=False),
    _id("correlation_id", nullable=False, index=True),
    Column("sources", Text, nullable=False),
    Column("body", Text, nullable=False),
)


def _line_columns() -> list[Column[Any]]:
    return [
        _id("product_id", nullable=False),
        Column("description", Text, nullable=False),
        Column("quantity", BigInteger, nullable=False),
        Column("currency", String(3), nullable=False),
        Column("amount_minor", BigInteger, nullable=False),
        Column("tax_amount_minor", BigInteger, nullable=False),
        Column("service_start", Date, nullable=False),
        Column("service_end", Date, nullable=False),
        Column("proration", Boolean, nullable=False),
    ]


invoice_lines = Table(
    "billing_invoice_lines", metadata,
    _id("invoice_id", nullable=False),
    Column("line_no", Integer, nullable=False),
    _id("line_id", nullable=False),
    _id("source_line_id", nullable=False),
    *_line_columns(),
    PrimaryKeyConstraint("invoice_id", "line_no"),
)

credit_memos = Table(
    "billing_credit_memos", metadata,
    _id("id", primary_key=True),
    Column("position", Integer, nullable=False, unique=True),
    Column("number", String(64), nullable=False, unique=True),
    _id("invoice_id", nullable=False, index=True),
    _id("customer_id", nullable=False),
    Column("legal_entity", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("issue_date", Date, nullable=False),
    Column("reason", String(64), nullable=False),
    Column("subtotal_minor", BigInteger, nullable=False),
    Column("tax_total_minor", BigInteger, nullable=False),
    Column("total_minor", BigInteger, nullable=False),
    Column("body", Text, nullable=False),
)

credit_memo_lines = Table(
    "billing_credit_memo_lines", metadata,
    _id("credit_memo_id", nullable=False),
    Column("line_no", Integer, nullable=False),
    _id("invoice_line_id", nullable=False),
    *_line_columns(),
    PrimaryKeyConstraint("credit_memo_id", "line_no"),
)

payments = Table(
    "billing_payments", metadata,
    _id("id", primary_key=True),
    Column("position", Integer, nullable=False, unique=True),
    _id("invoice_id", nullable=False, index=True),
    _id("customer_id", nullable=False),
    Column("legal_entity", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("received_on", Date, nullable=False),
    Column("body", Text, nullable=False),
)

declines = Table(
    "billing_payment_declines", metadata,
    Column("position", Integer, primary_key=True, autoincrement=False),
    _id("payment_id", nullable=False),
    _id("invoice_id", nullable=False, index=True),
    Column("currency", String(3), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("attempted_on", Date, nullable=False),
    Column("reason", Text, nullable=False),
)

refunds = Table(
    "billing_refunds", metadata,
    _id("id", primary_key=True),
    Column("position", Integer, nullable=False, unique=True),
    _id("payment_id", nullable=False, index=True),
    _id("customer_id", nullable=False),
    Column("legal_entity", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("issued_on", Date, nullable=False),
    Column("reason", String(255), nullable=False),
    Column("body", Text, nullable=False),
)

usage_records = Table(
    "billing_usage_records", metadata,
    _id("id", primary_key=True),
    Column("position", Integer, nullable=False, unique=True),
    _id("contract_id", nullable=False),
    _id("product_id", nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("occurred_on", Date, nullable=False),
    Index("ix_billing_usage_records_contract", "contract_id", "product_id", "occurred_on"),
)

usage_charges = Table(
    "billing_usage_charges", metadata,
    _id("id", primary_key=True),
    Column("position", Integer, nullable=False, unique=True),
    _id("contract_id", nullable=False, index=True),
    _id("line_id", nullable=False),
    _id("product_id", nullable=False),
    Column("period_start", Date, nullable=False),
    Column("period_end", Date, nullable=False),
    Column("used", BigInteger, nullable=False),
    Column("included", BigInteger, nullable=False),
    Column("billable", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("drawn_minor", BigInteger, nullable=False),
    Column("invoiced_minor", BigInteger, nullable=False),
    _id("invoice_id"),
    Index("ux_billing_usage_charges_line_period", "contract_id", "line_id", "period_start",
          unique=True),
)

held_invoices = Table(
    "billing_held_invoices", metadata,
    Column("seq", Serial, primary_key=True, autoincrement=True),
    _id("id", nullable=False),
    _id("customer_id", nullable=False, index=True),
    _id("contract_id"),
    Column("legal_entity", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("issue_date", Date, nullable=False),
    Column("version", Integer, nullable=False),
    Column("code", String(64), nullable=False),
    Column("transient", Boolean, nullable=False),
    Column("subtotal_minor", BigInteger, nullable=False),
    _id("invoice_id", index=True),
    Column("body", Text, nullable=False),
    Index("ux_billing_held_invoices_id", "id", unique=True),
)

line_taxes = Table(
    "billing_line_taxes", metadata,
    _id("document_id", nullable=False),
    Column("line_no", Integer, nullable=False),
    Column("detail_no", Integer, nullable=False),
    Column("jurisdiction", String(32), nullable=False),
    Column("tax_type", String(32), nullable=False),
    Column("rate", String(40), nullable=False),
    Column("treatment", String(16), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("taxable_minor", BigInteger, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    PrimaryKeyConstraint("document_id", "line_no", "detail_no"),
)

outbox = Table(
    "billing_outbox", metadata,
    Column("seq", Serial, primary_key=True, autoincrement=True),
    Column("source_event_id", String(_ID), nullable=False, unique=True),
    Column("type", String(64), nullable=False),
    _id("correlation_id", nullable=False),
    Column("envelope", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("published", Boolean, nullable=False),
    Column("published_at", UtcDateTime),
    Index("ix_billing_outbox_pending", "published", "seq"),
)
