"""Tax payable per jurisdiction in a real trytond (PostgreSQL): each tax line carries its
document and jurisdiction, and reconciliation reads them back (`ListLedgerBooks`)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from finsync.connectors.ports import DeliveryContext, TaxAmount
from finsync.recon.port_books import ListLedgerBooks
from tests.external.tryton_fixtures import TrytonBooks
from tests.ledgerkit import credit_memo, invoice

AS_OF = date(2026, 12, 31)


def _ctx(key: str, posting_date: date | None = None) -> DeliveryContext:
    return DeliveryContext(key, f"evt-{key}", "amd-1", posting_date=posting_date)


def test_tax_lines_round_trip_per_document_and_jurisdiction(tryton_books: TrytonBooks) -> None:
    ledger = tryton_books.ledger()
    # Two lines of 100.00: New York State 4.00 each, New York City 4.50 each.
    ledger.post_invoice(invoice("inv_1", ["100.00", "100.00"],
                                breakdown=(("US-NY", "4.00"), ("US-NY-NYC", "4.50"))),
                        _ctx("k1"))
    ledger.post_invoice(invoice("inv_old", ["10.00"], tax="0.80"), _ctx("k2"))
    ledger.post_credit_memo(credit_memo("cm_1", "inv_1", "50.00", breakdown=(
        ("US-NY", "2.00"), ("US-NY-NYC", "2.25"))), _ctx("k3"))
    # A re-routed invoice: issued in January, booked on 1 March.
    ledger.post_invoice(replace(invoice("inv_2", ["100.00"], breakdown=(("US-NY", "4.00"),)),
                                issue_date=date(2026, 1, 20)),
                        _ctx("k4", posting_date=date(2026, 3, 1)))
    books = ListLedgerBooks(ledger)
    assert books.tells_tax
    assert list(books.tax_payable("le_us", AS_OF)) == [
        TaxAmount("cm_1", "US-NY", "2026-02", "USD", -200),
        TaxAmount("cm_1", "US-NY-NYC", "2026-02", "USD", -225),
        TaxAmount("inv_1", "US-NY", "2026-01", "USD", 800),
        TaxAmount("inv_1", "US-NY-NYC", "2026-01", "USD", 900),
        TaxAmount("inv_2", "US-NY", "2026-03", "USD", 400),
        TaxAmount("inv_old", "", "2026-01", "USD", 80)]
    assert [r.document_id for r in books.tax_payable("le_us", date(2026, 1, 31))] == [
        "inv_1", "inv_1", "inv_old"]  # what was posted by the end of January
