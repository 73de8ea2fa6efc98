"""Billing's tax in storage, on SQLite and PostgreSQL: held drafts stored unnumbered and
released by the service (by command and by the clock), jurisdiction lines stored and read
in sets as reconciliation reads them (`BillingBooks.tax_amounts`)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from sqlalchemy import Engine, delete

from finsync.connectors.embedded.billing import billing_service
from finsync.connectors.embedded.billing_records import EmbeddedBillingRecords
from finsync.connectors.ports import TaxAmount
from finsync.domain.catalog import BillingFrequency
from finsync.domain.contract import ContractLine, SubscriptionContract
from finsync.domain.events import InvoiceHeld, InvoiceIssued, InvoiceReleased
from finsync.domain.money import Money
from finsync.domain.party import CustomerAccount
from finsync.systems.billing import tables
from finsync.systems.billing.credit import CreditReason, IssueCreditMemo
from finsync.systems.billing.handler import RegisterCustomer, RunClock
from finsync.systems.billing.held import RetryHeldInvoices
from finsync.systems.billing.migrate import upgrade
from finsync.systems.billing.service import BillingService
from finsync.systems.billing.subscription import CreateSubscription
from tests.taxkit import RateQuoter
from tests.unit.billing.servicekit import CONFIG, END, REGISTER, START, Clock, create, usd

KLEIN = CustomerAccount("cus_klein", "Klein GmbH", "le_eu", "EUR", "DE")


def _service(engine: Engine, quoter: RateQuoter) -> BillingService:
    upgrade(engine)
    return billing_service(engine, replace(CONFIG, tax=quoter), Clock())


def _types(service: BillingService, command: object) -> list[type]:
    return [type(e.event) for e in service.execute(command).emitted]  # type: ignore[arg-type]


def test_a_held_draft_is_stored_unnumbered_and_released_once(engine: Engine) -> None:
    quoter = RateQuoter(down=True)
    held = _service(engine, quoter)
    held.execute(REGISTER)
    assert InvoiceHeld in _types(held, create())
    [draft] = held.held()
    assert (draft.subtotal, draft.code, draft.transient, draft.version) == (
        usd("60000.00"), "tax_unavailable", True, 1)
    assert held.invoices() == []
    again = _service(engine, RateQuoter())  # the engine is back, another process
    assert _types(again, RetryHeldInvoices()) == [InvoiceReleased, InvoiceIssued]
    [invoice] = again.invoices()
    assert (invoice.number, invoice.issue_date) == ("INV-le_us-000001", START)
    assert again.held() == []
    [released] = again.held(released=True)
    assert (released.version, released.invoice_id) == (2, invoice.id)
    assert _types(again, RetryHeldInvoices(draft.id)) == []
    assert _types(again, RetryHeldInvoices()) == []


def test_the_clock_run_releases_held_drafts_first(engine: Engine) -> None:
    quoter = RateQuoter(down=True)
    service = _service(engine, quoter)
    service.execute(REGISTER)
    service.execute(create())
    quoter.down = False
    # annual: nothing else is due by 1 February, the held draft is released
    assert _types(service, RunClock(date(2026, 2, 1))) == [InvoiceReleased, InvoiceIssued]
    assert _types(service, RunClock(date(2026, 2, 1))) == []


def _klein(service: BillingService) -> str:
    """Klein (DE, 19 %): 500 seats x 110.00 EUR = 55000.00, tax 10450.00."""
    line = ContractLine("ln_seats", "prod_platform_seat", "price_seat_annual_eur", 500,
                        Money.of("110.00", "EUR"), START, END)
    contract = SubscriptionContract("con_klein", "cus_klein", "le_eu", "EUR", START, END,
                                    BillingFrequency.ANNUAL, (line,))
    service.execute(RegisterCustomer(KLEIN))
    service.execute(CreateSubscription(contract, "order_klein"))
    [invoice] = service.invoices(customer_id="cus_klein")
    return invoice.id


def _tax_amounts(service: BillingService, entity: str, as_of: date) -> list[TaxAmount]:
    with EmbeddedBillingRecords("billing", service).books() as books:
        return list(books.tax_amounts(entity, as_of))


def test_tax_amounts_per_document_and_jurisdiction_memos_negative(engine: Engine) -> None:
    service = _service(engine, RateQuoter())
    invoice_id = _klein(service)
    # a 10 % credit in March: 5500.00, tax 10450.00 x 5500/55000 = 1045.00
    service.execute(IssueCreditMemo(invoice_id, CreditReason.SLA_CREDIT, date(2026, 3, 2),
                                    Money.of("5500.00", "EUR")))
    memo_id = service.state().credit_memos[0].id
    expected = sorted([TaxAmount(invoice_id, "DE", "2026-01", "EUR", 1_045_000),
                       TaxAmount(memo_id, "DE", "2026-03", "EUR", -104_500)],
                      key=lambda r: r.document_id)
    assert _tax_amounts(service, "le_eu", date(2026, 12, 31)) == expected
    assert _tax_amounts(service, "le_eu", date(2026, 2, 1)) == [  # the memo is later
        TaxAmount(invoice_id, "DE", "2026-01", "EUR", 1_045_000)]


def test_untaxed_documents_are_left_out_and_old_ones_read_whole(engine: Engine) -> None:
    service = _service(engine, RateQuoter())
    service.execute(REGISTER)
    service.execute(create())  # US, no state: not_taxable at "US", tax 0 -> no row
    assert _tax_amounts(service, "le_us", date(2026, 12, 31)) == []
    invoice_id = _klein(service)
    with engine.begin() as conn:  # as stored before jurisdiction lines were kept
        conn.execute(delete(tables.line_taxes))
    assert _tax_amounts(service, "le_eu", date(2026, 12, 31)) == [
        TaxAmount(invoice_id, "", "2026-01", "EUR", 1_045_000)]
    assert _tax_amounts(service, "le_us", date(2026, 12, 31)) == []  # read whole: tax 0
