"""The tax check over the embedded ledger's real tax payable stream, on SQLite and
PostgreSQL: billing's side is read from the very documents the ledger posted (as billing's
books state them: per document and jurisdiction, credit memos negative, the issue month)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date

import pytest
from sqlalchemy import Engine

from finsync.connectors.embedded.ledger_books import ledger_books
from finsync.connectors.ports import TaxAmount
from finsync.domain.invoice import CreditMemo, Invoice
from finsync.domain.journal import PeriodStatus
from finsync.recon.books import Books
from finsync.recon.model import CheckResult
from finsync.recon.tax import tax_vs_tax_payable
from finsync.systems.ledger.service import LedgerService, Source
from tests.ledgerkit import credit_memo, invoice, ledger_service

AS_OF = date(2026, 12, 31)
NEW_YORK = (("US-NY", "4.00"), ("US-NY-NYC", "4.50"))


class DocumentBilling:
    """A `BillingBooks.tax_amounts` over documents in memory."""

    def __init__(self, documents: Sequence[Invoice | CreditMemo]) -> None:
        self._documents = documents

    def tax_amounts(self, legal_entity: str, as_of: date) -> Iterator[TaxAmount]:
        rows: dict[tuple[str, str], TaxAmount] = {}
        for doc in self._documents:
            if doc.legal_entity != legal_entity or doc.issue_date > as_of:
                continue
            sign = -1 if isinstance(doc, CreditMemo) else 1
            for line in doc.lines:
                parts = [(d.jurisdiction, d.amount) for d in line.taxes] or \
                    [("", line.tax_amount)]
                for code, amount in parts:
                    known = rows.get((doc.id, code))
                    minor = sign * amount.to_minor() + (known.amount_minor if known else 0)
                    rows[(doc.id, code)] = TaxAmount(doc.id, code,
                                                     doc.issue_date.strftime("%Y-%m"),
                                                     doc.currency, minor)
        return iter([rows[k] for k in sorted(rows)])


def _check(service: LedgerService, documents: Sequence[Invoice | CreditMemo],
           explained: dict[str, str] | None = None) -> CheckResult:
    billing = DocumentBilling(documents)

    def nothing() -> tuple[()]:
        return ()

    with ledger_books(service.engine) as erp:
        books = Books("le_us", "USD", AS_OF, nothing, nothing, nothing, nothing, nothing,
                      nothing, nothing, nothing, nothing, nothing, (), {}, {}, explained or {},
                      False, billing_tax=lambda: billing.tax_amounts("le_us", AS_OF),
                      erp_tax=lambda: erp.tax_payable("le_us", AS_OF))
        return tax_vs_tax_payable(books)


@pytest.fixture
def service(engine: Engine) -> LedgerService:
    return ledger_service(engine)


def _documents() -> list[Invoice | CreditMemo]:
    # Ids whose code-point order ("inv_B" < "inv_a") is not PostgreSQL's default collation's.
    return [invoice("inv_a", ["100.00", "100.00"], breakdown=NEW_YORK),
            invoice("inv_B", ["50.00"], on=date(2026, 2, 3), breakdown=(("US-TX", "3.13"),)),
            invoice("inv_old", ["10.00"], tax="0.80"),
            invoice("inv_ca", ["10.00"], breakdown=(("US-CA", "0"),)),
            credit_memo("cm_1", "inv_a", "50.00", on=date(2026, 3, 2),
                        breakdown=(("US-NY", "2.00"), ("US-NY-NYC", "2.25")))]


def _post(service: LedgerService, documents: Sequence[Invoice | CreditMemo]) -> None:
    for doc in documents:
        if isinstance(doc, Invoice):
            service.post_invoice(doc, f"k-{doc.id}")
        else:
            service.post_credit_memo(doc, f"k-{doc.id}")


def test_what_the_ledger_posted_agrees_with_billing(service: LedgerService) -> None:
    documents = _documents()
    _post(service, documents)
    result = _check(service, documents)
    assert result.breaks == ()
    # inv_a 2, inv_B 1, inv_old 1, inv_ca 1 (0 against nothing), cm_1 2
    assert result.item_count == 7
    assert "US-NY 2026-03 billing -2.00 USD, ERP -2.00 USD" in result.notes


def test_a_document_the_ledger_lacks_breaks_and_its_exception_explains_it(
        service: LedgerService) -> None:
    documents = _documents()
    _post(service, [d for d in documents if d.id != "inv_B"])
    result = _check(service, documents, {"invoice:inv_B": "exception 3 (sequencing_error)"})
    assert [(i.ref, str(i.variance.amount), i.cause, i.explained_by) for i in result.breaks] \
        == [("tax:US-TX:2026-02:inv_B", "-3.13", "not_in_erp",
             "exception 3 (sequencing_error)")]
    assert result.unexplained == ()


def test_tax_billing_changed_after_posting_breaks(service: LedgerService) -> None:
    documents = _documents()
    _post(service, documents)
    billed = [invoice("inv_a", ["100.00", "100.00"],
                      breakdown=(("US-NY", "4.00"), ("US-NY-NYC", "4.51"))),
              *documents[1:]]
    result = _check(service, billed)
    # NYC: billing 4.51 x 2 = 9.02, the ERP 9.00
    assert [(i.ref, str(i.expected.amount), str(i.actual.amount), i.cause)
            for i in result.breaks] == [("tax:US-NY-NYC:2026-01:inv_a", "9.02", "9.00",
                                         "tax_differs")]


def test_a_rerouted_invoice_is_no_tax_break(service: LedgerService) -> None:
    documents = _documents()
    service.set_period_status("le_us", "2026-01", PeriodStatus.CLOSED, "controller")
    service.post_invoice(documents[0], "k0", Source(approved=True,
                                                    posting_date=date(2026, 2, 1)))
    _post(service, documents[1:2])  # inv_B, in February
    result = _check(service, documents[:2])
    assert result.breaks == ()
    assert "inv_a US-NY issued in 2026-01, booked in 2026-02 (not a break)" in result.notes
