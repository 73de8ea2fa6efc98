"""Tax payable per jurisdiction in the embedded ledger, on SQLite and PostgreSQL: the legs an
invoice and a credit memo post, and the stream reconciliation reads (`tax_payable`)."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import Engine, select

from finsync.connectors.embedded.ledger_books import ledger_books
from finsync.connectors.ports import TaxAmount
from finsync.domain.journal import JournalEntry, JournalLine, PeriodStatus, Side
from finsync.domain.money import Money
from finsync.systems.ledger import tables as t
from finsync.systems.ledger.service import LedgerService, Source
from tests.ledgerkit import credit_memo, invoice, ledger_service

TAX = "2100"  # the default chart's tax payable
AS_OF = date(2026, 12, 31)
# Two lines of 100.00, each taxed 4 % by New York State and 4.5 % by New York City.
NEW_YORK = (("US-NY", "4.00"), ("US-NY-NYC", "4.50"))


@pytest.fixture
def service(engine: Engine) -> LedgerService:
    return ledger_service(engine)


def _tax_lines(entry: JournalEntry) -> list[tuple[Side, str, tuple[tuple[str, str], ...]]]:
    return [(line.side, str(line.amount.amount), line.dimensions)
            for line in entry.lines if line.account == TAX]


def _payable(service: LedgerService, entity: str = "le_us",
             as_of: date = AS_OF) -> list[TaxAmount]:
    with ledger_books(service.engine) as books:
        return list(books.tax_payable(entity, as_of))


def test_an_invoice_credits_tax_payable_per_jurisdiction(service: LedgerService) -> None:
    posted = service.post_invoice(invoice("inv_1", ["100.00", "100.00"], breakdown=NEW_YORK),
                                  "k1")
    entry = service.entry(posted.entry_id)
    dims = (("customer", "cus_1"), ("contract", "con_1"), ("document", "inv_1"))
    # NY: 4.00 + 4.00 = 8.00; NYC: 4.50 + 4.50 = 9.00; together the tax total 17.00.
    assert _tax_lines(entry) == [
        (Side.CREDIT, "8.00", (*dims, ("jurisdiction", "US-NY"))),
        (Side.CREDIT, "9.00", (*dims, ("jurisdiction", "US-NY-NYC")))]
    receivable = next(line for line in entry.lines if line.account == "1200")
    assert receivable.amount == Money.of("217.00", "USD")  # 200.00 + 17.00, as before
    with service.engine.connect() as conn:
        stored = conn.execute(select(t.lines.c.account, t.lines.c.jurisdiction)
                              .where(t.lines.c.entry_id == entry.id)
                              .order_by(t.lines.c.line_no)).all()
    assert [tuple(r) for r in stored if r[0] == TAX] == [(TAX, "US-NY"), (TAX, "US-NY-NYC")]
    assert {r[1] for r in stored if r[0] != TAX} == {None}


def test_a_credit_memo_debits_the_tax_it_gives_back_per_jurisdiction(
        service: LedgerService) -> None:
    service.post_invoice(invoice("inv_1", ["100.00", "100.00"], breakdown=NEW_YORK), "k1")
    # 50.00 credited: NY 4 % = 2.00, NYC 4.5 % = 2.25.
    memo = credit_memo("cm_1", "inv_1", "50.00", breakdown=(("US-NY", "2.00"),
                                                            ("US-NY-NYC", "2.25")))
    entry = service.entry(service.post_credit_memo(memo, "k2").entry_id)
    dims = (("customer", "cus_1"), ("document", "cm_1"), ("invoice", "inv_1"))
    assert _tax_lines(entry) == [
        (Side.DEBIT, "2.00", (*dims, ("jurisdiction", "US-NY"))),
        (Side.DEBIT, "2.25", (*dims, ("jurisdiction", "US-NY-NYC")))]
    assert _payable(service) == [
        TaxAmount("cm_1", "US-NY", "2026-02", "USD", -200),
        TaxAmount("cm_1", "US-NY-NYC", "2026-02", "USD", -225),
        TaxAmount("inv_1", "US-NY", "2026-01", "USD", 800),
        TaxAmount("inv_1", "US-NY-NYC", "2026-01", "USD", 900)]


def test_tax_without_a_breakdown_stays_one_leg_without_a_jurisdiction(
        service: LedgerService) -> None:
    entry = service.entry(service.post_invoice(
        invoice("inv_old", ["10.00", "20.00"], tax="1.25"), "k1").entry_id)
    dims = (("customer", "cus_1"), ("contract", "con_1"), ("document", "inv_old"))
    assert _tax_lines(entry) == [(Side.CREDIT, "2.50", dims)]  # 1.25 x 2 lines
    assert _payable(service) == [TaxAmount("inv_old", "", "2026-01", "USD", 250)]


def test_an_exempt_jurisdiction_posts_nothing(service: LedgerService) -> None:
    exempt = (("US-CA", "0"), ("US-NY", "0.10"))
    entry = service.entry(service.post_invoice(invoice("inv_1", ["10.00"], breakdown=exempt),
                                               "k1").entry_id)
    assert [dims[-1] for _, _, dims in _tax_lines(entry)] == [("jurisdiction", "US-NY")]
    assert _payable(service) == [TaxAmount("inv_1", "US-NY", "2026-01", "USD", 10)]


def test_tax_payable_is_in_the_documents_currency(service: LedgerService) -> None:
    """An EUR invoice in the USD entity: booked at 1.10 in the GL, read back in EUR."""
    entry = service.entry(service.post_invoice(
        invoice("inv_eur", ["100.00"], "EUR", breakdown=(("DE", "19.00"),)), "k1").entry_id)
    (line,) = [line for line in entry.lines if line.account == TAX]
    assert line.amount == Money.of("20.90", "USD")  # 19.00 x 1.10
    assert line.transaction_amount == Money.of("19.00", "EUR")
    assert _payable(service) == [TaxAmount("inv_eur", "DE", "2026-01", "EUR", 1900)]


def test_tax_payable_stops_at_the_day_and_keeps_to_the_entity(service: LedgerService) -> None:
    service.post_invoice(invoice("inv_1", ["100.00"], breakdown=NEW_YORK), "k1")
    service.post_invoice(invoice("inv_2", ["100.00"], on=date(2026, 3, 2),
                                 breakdown=NEW_YORK), "k2")
    service.post_invoice(invoice("inv_eu", ["100.00"], "EUR", entity="le_eu",
                                 breakdown=(("DE", "19.00"),)), "k3")
    assert [(a.document_id, a.jurisdiction) for a in _payable(service, as_of=date(2026, 3, 1))
            ] == [("inv_1", "US-NY"), ("inv_1", "US-NY-NYC")]
    assert _payable(service, "le_eu") == [TaxAmount("inv_eu", "DE", "2026-01", "EUR", 1900)]


def test_a_rerouted_document_is_in_the_month_it_was_booked(service: LedgerService) -> None:
    service.set_period_status("le_us", "2026-01", PeriodStatus.CLOSED, "controller")
    service.post_invoice(invoice("inv_1", ["100.00"], breakdown=(("US-NY", "4.00"),)), "k1",
                         Source(approved=True, posting_date=date(2026, 2, 1)))
    assert _payable(service) == [TaxAmount("inv_1", "US-NY", "2026-02", "USD", 400)]


def test_a_manual_entry_to_tax_payable_belongs_to_no_document(service: LedgerService) -> None:
    """A remittance to the authority (Dr tax payable / Cr cash) is no document's tax."""
    service.post_invoice(invoice("inv_1", ["100.00"], breakdown=(("US-NY", "4.00"),)), "k1")
    amount = Money.of("4.00", "USD")
    service.post_entry(JournalEntry("je_remit", "le_us", date(2026, 2, 20), "NY remittance", (
        JournalLine(TAX, Side.DEBIT, amount, (("jurisdiction", "US-NY"),)),
        JournalLine("1000", Side.CREDIT, amount))), "k2")
    assert _payable(service) == [TaxAmount("inv_1", "US-NY", "2026-01", "USD", 400)]


def test_a_summary_preview_keeps_the_jurisdiction_on_tax_lines(service: LedgerService) -> None:
    entry = service.preview("invoice", invoice("inv_1", ["100.00"], breakdown=NEW_YORK))
    assert _tax_lines(entry) == [
        (Side.CREDIT, "4.00", (("jurisdiction", "US-NY"),)),
        (Side.CREDIT, "4.50", (("jurisdiction", "US-NY-NYC"),))]
    assert {line.dimensions for line in entry.lines if line.account not in (TAX, "1200")} == {()}
