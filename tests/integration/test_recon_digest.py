"""Digest-first reconciliation reports exactly what a full read reports: over random books
of billing and the embedded ledger (invoices, credit memos, payments, refunds; the ERP's
open items and applications, with differences injected: a missing item, a cent off, an
ERP-only debit or credit, an application missing or off), the run that compares
per-bucket digests first and reads only the buckets that differ finds the same breaks,
with the same causes, money and explanations, and counts the same items per check, as the
run that reads every row; through the embedded ledger's SQL and through its lists
(`ListLedgerBooks`), on both databases. Rows are written straight into each system's own
tables, as their writers store them, so that a hypothesis example costs milliseconds."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    String,
    delete,
    insert,
    literal,
    select,
    union_all,
    update,
)

from finsync.bootstrap import Finance, build_finance
from finsync.config import DEFAULT_CONFIG, parse_config
from finsync.connectors.ports import (
    BillingDigests,
    BucketDigest,
    LedgerBooksPort,
    LedgerDigests,
    LedgerPort,
)
from finsync.dbsnapshot import digest_rows, digests, read_snapshot
from finsync.demo.clock import SimClock
from finsync.recon.model import Report
from finsync.recon.service import Entity, Reconciliation
from finsync.systems.billing import tables as bt
from finsync.systems.ledger import tables as lt

AS_OF = date(2026, 6, 30)
DAY = date(2026, 3, 1)
NOW = datetime(2026, 7, 1, tzinfo=UTC)
ERP_INVOICE = ("same", "same", "same", "missing", "cent_off", "negative")
ERP_PAYMENT = ("same", "same", "same", "missing", "cent_off")


@dataclass(frozen=True)
class Doc:
    total: int
    currency: str
    customer: int
    paid: int  # 0: unpaid, 1: in full, 2: in part
    credited: int
    refunded: int
    erp_invoice: str
    erp_payment: str


docs = st.lists(st.builds(
    Doc, st.integers(0, 5_000), st.sampled_from(("USD", "USD", "USD", "EUR")),
    st.integers(0, 4), st.integers(0, 2), st.integers(0, 300), st.integers(0, 200),
    st.sampled_from(ERP_INVOICE), st.sampled_from(ERP_PAYMENT)), max_size=40)
erp_only = st.lists(st.tuples(st.integers(-3_000, 3_000), st.booleans()), max_size=4)


@pytest.fixture
def finance(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Finance]:
    monkeypatch.setenv("FINSYNC_DATABASE_URL", db_url)
    config = parse_config(tomllib.loads(DEFAULT_CONFIG.read_text()), tmp_path)
    finance = build_finance(config, clock=SimClock(NOW))
    yield finance
    finance.dispose()


class ListsOnly:
    """The embedded ledger seen only through `LedgerPort`'s lists (as Tryton is)."""

    def __init__(self, ledger: LedgerPort) -> None:
        self._ledger = ledger

    def __getattr__(self, name: str) -> Any:
        if name == "books":
            raise AttributeError(name)
        return getattr(self._ledger, name)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(books=docs, extra=erp_only)
def test_digest_first_reports_what_a_full_read_reports(
        finance: Finance, books: list[Doc], extra: list[tuple[int, bool]]) -> None:
    with finance.hub.engine.begin() as conn:
        _write(conn, books, extra)
    ledger = finance.ports.ledger()
    assert isinstance(ledger, LedgerBooksPort)
    for erp in (ledger, ListsOnly(ledger)):
        full = _run(finance, erp, full_read_rows_max=10**9)
        first = _run(finance, erp, full_read_rows_max=0)
        assert _found(first) == _found(full)
    _digests_are_pythons(finance)


def _digests_are_pythons(finance: Finance) -> None:
    """Each database hashes rows as `dbsnapshot` does in Python (else every bucket would
    differ from a list-fed ERP's, and be read: right, but slow)."""
    ledger = finance.ports.ledger()
    assert isinstance(ledger, LedgerBooksPort)
    with finance.ports.billing_records().books() as billing, ledger.books() as erp:
        assert isinstance(billing, BillingDigests) and isinstance(erp, LedgerDigests)
        pairs = ((billing.open_invoice_digests, billing.open_invoices),
                 (billing.payment_digests, billing.payments_applied),
                 (erp.open_item_digests, erp.open_items), (erp.applied_digests, erp.applied_by))
        for digests, rows in pairs:
            expected = digest_rows(((d.document_id, d.currency, d.amount_minor)
                                    for d in rows("le_us", AS_OF)), "USD")
            assert [_digest(d) for d in digests("le_us", "USD", AS_OF)] == expected


# Amounts where the fact hash's int64 arithmetic on PostgreSQL could go wrong: around
# zero, around the 2^40 modulus and its 2^20 halves, and far beyond any real amount.
EDGE_AMOUNTS = (0, 1, -1, -2, 2**20 - 1, 2**20, 2**40 - 2, 2**40 - 1, 2**40, -(2**40),
                -(2**40) - 1, 10**15, -(10**15), 2**62, -(2**62))


def test_each_database_hashes_edge_amounts_as_python(engine: Engine) -> None:
    rows = [(f"doc_{n}_{k}", "USD" if n % 3 else "EUR", amount)
            for n, amount in enumerate(EDGE_AMOUNTS) for k in range(20)]
    parts = [select(literal(key, String).label("key"), literal(currency, String)
                    .label("currency"), literal(amount, BigInteger).label("amount"))
             for key, currency, amount in rows]
    with read_snapshot(engine) as conn:
        found = digests(conn, union_all(*parts).subquery(), "USD")
    assert found == digest_rows(rows, "USD")


def _digest(d: BucketDigest) -> tuple[int, int, int, int, int]:
    return d.bucket, d.rows, d.facts, d.amount_minor, d.fingerprint


def _run(finance: Finance, ledger: Any, full_read_rows_max: int) -> Report:
    recon = Reconciliation(finance.hub.engine, finance.ports.billing_records(), ledger,
                           finance.ports.revenue(), [Entity("le_us", "USD")],
                           SimClock(NOW), full_read_rows_max=full_read_rows_max)
    return recon.run(AS_OF, record=False)


def _found(report: Report) -> list[Any]:
    return [(c.name, c.legal_entity, c.item_count, [b.as_dict() for b in c.breaks],
             c.notes, c.variance) for c in report.checks]


def _write(conn: Connection, books: list[Doc], extra: list[tuple[int, bool]]) -> None:
    for table in (bt.refunds, bt.payments, bt.credit_memos, bt.invoices, lt.settlements,
                  lt.items, lt.entries):
        conn.execute(delete(table))
    rows: dict[Any, list[dict[str, Any]]] = {t: [] for t in (
        bt.invoices, bt.credit_memos, bt.payments, bt.refunds, lt.items, lt.settlements,
        lt.entries)}
    for n, doc in enumerate(books):
        _document(rows, n, doc)
    for n, (amount, customer_credit) in enumerate(extra):
        if customer_credit:  # an application by a document billing does not know
            rows[lt.entries].append(_entry(f"je_x{n}", f"pay_erp_{n}", "payment"))
            rows[lt.settlements].append(_settlement(f"inv_erp_{n}", f"je_x{n}", amount))
        rows[lt.items].append(_item(f"inv_erp_{n}", f"cus_{n % 3}", "USD", amount))
    for table, values in rows.items():
        if values:
            conn.execute(insert(table), values)


def _document(rows: dict[Any, list[dict[str, Any]]], n: int, doc: Doc) -> None:
    inv, pay, customer = f"inv_{n}", f"pay_{n}", f"cus_{doc.customer}"
    credited = min(doc.credited, doc.total)
    paid = {0: 0, 1: doc.total - credited, 2: (doc.total - credited) // 2}[doc.paid]
    refunded = min(doc.refunded, paid)
    common = {"customer_id": customer, "legal_entity": "le_us", "currency": doc.currency}
    rows[bt.invoices].append({
        **common, "id": inv, "position": n, "number": f"INV-{n}", "contract_id": None,
        "contract_version": None, "issue_date": DAY, "due_date": DAY,
        "subtotal_minor": doc.total, "tax_total_minor": 0, "total_minor": doc.total,
        "correlation_id": f"c_{n}", "sources": "[]", "body": "{}"})
    if credited:
        rows[bt.credit_memos].append({
            **common, "id": f"cm_{n}", "position": n, "number": f"CM-{n}", "invoice_id": inv,
            "issue_date": DAY, "reason": "sla_credit", "subtotal_minor": credited,
            "tax_total_minor": 0, "total_minor": credited, "body": "{}"})
    if paid:
        rows[bt.payments].append({**common, "id": pay, "position": n, "invoice_id": inv,
                                  "amount_minor": paid, "received_on": DAY, "body": "{}"})
        _erp_payment(rows, n, doc, paid)
    if refunded:
        rows[bt.refunds].append({**common, "id": f"ref_{n}", "position": n, "payment_id": pay,
                                 "amount_minor": refunded, "issued_on": DAY,
                                 "reason": "r", "body": "{}"})
    open_minor = max(doc.total - credited - paid + refunded, 0)
    erp = {"same": open_minor, "missing": None, "cent_off": open_minor + 1,
           "negative": -open_minor - 1}[doc.erp_invoice]
    if erp is not None:
        rows[lt.items].append(_item(inv, customer, doc.currency, erp))


def _erp_payment(rows: dict[Any, list[dict[str, Any]]], n: int, doc: Doc, paid: int) -> None:
    applied = {"same": paid, "missing": None, "cent_off": paid - 1}[doc.erp_payment]
    if applied is None:
        return
    rows[lt.entries].append(_entry(f"je_p{n}", f"pay_{n}", "payment"))
    rows[lt.settlements].append(_settlement(f"inv_{n}", f"je_p{n}", applied))


def _item(document: str, customer: str, currency: str, open_minor: int) -> dict[str, Any]:
    credit = open_minor < 0
    return {"entity": "le_us", "id": document, "customer": customer,
            "kind": "credit" if credit else "invoice", "document_id": document,
            "currency": currency, "original_minor": abs(open_minor),
            "open_minor": abs(open_minor), "booked_currency": currency,
            "booked_open_minor": abs(open_minor), "posting_date": DAY, "due_date": DAY,
            "entry_id": f"je_{document}"}


def _settlement(item: str, entry: str, applied: int) -> dict[str, Any]:
    return {"entity": "le_us", "item_id": item, "entry_id": entry, "applied_minor": applied,
            "relieved_minor": applied, "posting_date": DAY}


def _entry(entry: str, document: str, kind: str) -> dict[str, Any]:
    return {"id": entry, "entity": "le_us", "posting_date": DAY, "period": "2026-03",
            "memo": "", "idempotency_key": entry, "body_hash": "", "document_kind": kind,
            "document_id": document, "correlation_id": None, "reverses": None,
            "source_refs": "[]", "approved": True, "posted_at": NOW}


def test_a_fixed_break_in_a_bucket_that_agrees_now_is_resolved(finance: Finance) -> None:
    """A bucket whose digests agree is still read when it holds an open break's item: the
    run that finds the item agreeing lists it (as a full read does) and resolves its
    reconciliation_break."""
    books = [Doc(1_000 + n, "USD", n % 3, 0, 0, 0, "same", "same") for n in range(30)]
    books[7] = Doc(1_007, "USD", 1, 0, 0, 0, "cent_off", "same")
    with finance.hub.engine.begin() as conn:
        _write(conn, books, [])
    report = _recorded(finance)
    assert [i.ref for _, i in report.unexplained] == ["invoice:inv_7"]
    with finance.hub.engine.begin() as conn:
        conn.execute(update(lt.items).where(lt.items.c.id == "inv_7")
                     .values(open_minor=1_007, original_minor=1_007, booked_open_minor=1_007))
    fixed = _recorded(finance)
    assert fixed.unexplained == ()
    [ar] = [c for c in fixed.checks if c.name == "billing_vs_erp_ar"]
    invoices = [(i.ref, i.is_break) for i in ar.items if i.ref.startswith("invoice:")]
    assert invoices == [("invoice:inv_7", False)]
    [row] = finance.triage.listing(status=None, exception_class="reconciliation_break")
    assert row["status"] == "resolved"


def _recorded(finance: Finance) -> Report:
    recon = Reconciliation(finance.hub.engine, finance.ports.billing_records(),
                           finance.ports.ledger(), finance.ports.revenue(),
                           [Entity("le_us", "USD")], SimClock(NOW), full_read_rows_max=0)
    return recon.run(AS_OF)
