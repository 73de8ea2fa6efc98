"""Rows of the tax engine's tables to and from its values, on one connection.

Rules:
- Master data is compared as sorted rows: the file's rows equal to the stored ones leave
  the tables alone; any difference rewrites them whole in the caller's transaction.
- A committed document is stored with a hash of its canonical body (what the engine keeps
  of it), so the same document id with another body is told apart from a redelivery.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from finsync.domain.invoice import CreditMemo, DocumentLine, Invoice
from finsync.domain.money import Money
from finsync.domain.tax import TaxDocumentKind, TaxTreatment
from finsync.systems.tax import tables as t
from finsync.systems.tax.certificate import ExemptionCertificate
from finsync.systems.tax.errors import BreakdownMissingError, DocumentTooLongError
from finsync.systems.tax.liability import CommittedDetail
from finsync.systems.tax.rules import Jurisdiction, Rate, Rounding, TaxRules, TaxType

COMMITTED = "committed"
VOIDED = "voided"

Rows = tuple[tuple[tuple[Any, ...], ...], ...]


# -- master data -----------------------------------------------------------------------------
def rule_rows(rules: TaxRules) -> Rows:
    jurisdictions = sorted((j.code, j.tax_type.value, j.rounding.value, j.levies_tax,
                            j.by_region, json.dumps(sorted(j.not_taxable)))
                           for j in rules.jurisdictions.values())
    rates = sorted((r.jurisdiction, r.tax_code, r.effective_from, str(r.rate))
                   for r in rules.rates)
    sellers = sorted(rules.sellers.items())
    return tuple(jurisdictions), tuple(rates), tuple(sellers)


def stored_rule_rows(conn: Connection) -> Rows:
    jurisdictions = conn.execute(select(
        t.jurisdictions.c.code, t.jurisdictions.c.tax_type, t.jurisdictions.c.rounding,
        t.jurisdictions.c.levies_tax, t.jurisdictions.c.by_region,
        t.jurisdictions.c.not_taxable).order_by(t.jurisdictions.c.code))
    rates = conn.execute(select(t.rates.c.jurisdiction, t.rates.c.tax_code,
                                t.rates.c.effective_from, t.rates.c.rate)
                         .order_by(t.rates.c.jurisdiction, t.rates.c.tax_code,
                                   t.rates.c.effective_from))
    sellers = conn.execute(select(t.sellers.c.legal_entity, t.sellers.c.country)
                           .order_by(t.sellers.c.legal_entity))
    return (tuple(tuple(r) for r in jurisdictions), tuple(tuple(r) for r in rates),
            tuple(tuple(r) for r in sellers))


def write_rules(conn: Connection, rows: Rows) -> None:
    jurisdictions, rates, sellers = rows
    for table in (t.rates, t.jurisdictions, t.sellers):
        conn.execute(delete(table))
    if jurisdictions:
        conn.execute(insert(t.jurisdictions), [dict(zip(
            ("code", "tax_type", "rounding", "levies_tax", "by_region", "not_taxable"), r,
            strict=True)) for r in jurisdictions])
    if rates:
        conn.execute(insert(t.rates), [dict(zip(
            ("jurisdiction", "tax_code", "effective_from", "rate"), r, strict=True))
            for r in rates])
    if sellers:
        conn.execute(insert(t.sellers), [{"legal_entity": e, "country": c} for e, c in sellers])


def rules_of(rows: Rows) -> TaxRules:
    jurisdictions, rates, sellers = rows
    found = [Jurisdiction(code, TaxType(kind), Rounding(rounding), bool(levies),
                          bool(by_region), frozenset(json.loads(codes)))
             for code, kind, rounding, levies, by_region, codes in jurisdictions]
    return TaxRules({j.code: j for j in found},
                    tuple(Rate(j, code, Decimal(rate), since)
                          for j, code, since, rate in rates),
                    dict(sellers))


# -- certificates ----------------------------------------------------------------------------
def certificate_of(row: Any) -> ExemptionCertificate:
    return ExemptionCertificate(row.id, row.customer_id, row.jurisdiction, row.valid_from,
                                row.valid_to, row.revoked_at is not None)


def certificates_of(conn: Connection, customer_id: str | None) -> list[ExemptionCertificate]:
    query = select(t.certificates).order_by(t.certificates.c.id)
    if customer_id is not None:
        query = query.where(t.certificates.c.customer_id == customer_id)
    return [certificate_of(row) for row in conn.execute(query)]


# -- committed documents ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Body:
    """What the engine keeps of a committed document."""

    document_id: str
    kind: TaxDocumentKind
    invoice_id: str | None
    reason: str | None
    legal_entity: str
    customer_id: str
    currency: str
    issue_date: date
    details: tuple[dict[str, Any], ...]

    @property
    def hash(self) -> str:
        canonical = json.dumps([self.kind.value, self.invoice_id, self.reason,
                                self.legal_entity, self.customer_id, self.currency,
                                self.issue_date.isoformat(), list(self.details)],
                               sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


# What the columns hold: longer values are refused by name, before the database would.
_LENGTHS = {"document id": 255, "customer id": 255, "legal entity": 64, "line id": 255,
            "jurisdiction": 32, "tax type": 16, "rate": 32, "reason": 64}


def _fits(what: str, value: str | None) -> None:
    limit = _LENGTHS[what]
    if value is not None and len(value) > limit:
        raise DocumentTooLongError(f"{what} {value[:40]!r}... of {len(value)} characters is "
                                   f"longer than {limit}")


def _detail_rows(document_id: str, line: DocumentLine) -> list[dict[str, Any]]:
    _fits("line id", line.line_id)
    if not line.taxes and line.tax_amount.is_zero:
        # No tax and no breakdown: a line no engine quoted (a source that sends none, a
        # document from before breakdowns). It is recorded with its document, and counts in
        # no jurisdiction's liability.
        return []
    if not line.taxes:
        raise BreakdownMissingError(f"{document_id} line {line.line_id} carries "
                                    f"{line.tax_amount} of tax but no jurisdiction lines "
                                    "(taxes): no jurisdiction can account for it")
    rows = []
    for detail in line.taxes:
        _fits("jurisdiction", detail.jurisdiction)
        _fits("tax type", detail.tax_type)
        _fits("rate", str(detail.rate))
        rows.append({"line_id": line.line_id, "jurisdiction": detail.jurisdiction,
                     "tax_type": detail.tax_type, "rate": str(detail.rate),
                     "treatment": detail.treatment.value,
                     "taxable_minor": detail.taxable.to_minor(),
                     "amount_minor": detail.amount.to_minor()})
    return rows


def body_of(document: Invoice | CreditMemo) -> Body:
    """The document's own jurisdiction lines; a taxed line without them cannot be recorded."""
    for what, value in (("document id", document.id), ("customer id", document.customer_id),
                        ("legal entity", document.legal_entity)):
        _fits(what, value)
    if isinstance(document, CreditMemo):
        _fits("document id", document.invoice_id)
        _fits("reason", document.reason)
    details = tuple(row for line in document.lines for row in _detail_rows(document.id, line))
    if isinstance(document, CreditMemo):
        return Body(document.id, TaxDocumentKind.CREDIT_MEMO, document.invoice_id,
                    document.reason, document.legal_entity, document.customer_id,
                    document.currency, document.issue_date, details)
    return Body(document.id, TaxDocumentKind.INVOICE, None, None, document.legal_entity,
                document.customer_id, document.currency, document.issue_date, details)


def insert_body(conn: Connection, body: Body, status: str, committed_at: Any) -> None:
    conn.execute(insert(t.transactions), {
        "document_id": body.document_id, "kind": body.kind.value, "invoice_id": body.invoice_id,
        "reason": body.reason, "legal_entity": body.legal_entity,
        "customer_id": body.customer_id, "currency": body.currency,
        "issue_date": body.issue_date, "body_hash": body.hash, "status": status,
        "voided_by": None, "committed_at": committed_at})
    if body.details:  # an empty executemany would insert one row of defaults
        conn.execute(insert(t.transaction_lines), [
            {"document_id": body.document_id, "detail_no": n, **detail}
            for n, detail in enumerate(body.details)])


def committed_details(conn: Connection, legal_entity: str, start: date,
                      end: date) -> list[CommittedDetail]:
    tx, lines = t.transactions, t.transaction_lines
    rows = conn.execute(
        select(tx.c.kind, tx.c.currency, lines.c.jurisdiction, lines.c.treatment,
               lines.c.taxable_minor, lines.c.amount_minor)
        .join(lines, lines.c.document_id == tx.c.document_id)
        .where(tx.c.legal_entity == legal_entity,
               tx.c.issue_date >= start, tx.c.issue_date < end)
        .order_by(tx.c.document_id, lines.c.detail_no))
    return [CommittedDetail(TaxDocumentKind(r.kind), r.jurisdiction, TaxTreatment(r.treatment),
                            Money.from_minor(r.taxable_minor, r.currency),
                            Money.from_minor(r.amount_minor, r.currency)) for r in rows]


def family_of(conn: Connection, invoice_id: str) -> Sequence[str]:
    """The invoice's id and those of its credit memos."""
    memos = conn.execute(select(t.transactions.c.document_id)
                         .where(t.transactions.c.invoice_id == invoice_id)).scalars()
    return [invoice_id, *memos]
