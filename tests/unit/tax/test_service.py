"""The tax engine's service on SQLite and PostgreSQL: master data, certificates, commits,
voids and the liability report."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import Engine

from finsync.domain.invoice import VOID, Invoice
from finsync.domain.money import Money
from finsync.domain.tax import TaxTreatment
from finsync.systems.tax.certificate import ExemptionCertificate
from finsync.systems.tax.config_file import parse_tax_rules
from finsync.systems.tax.errors import (
    BreakdownMissingError,
    CertificateError,
    CommitConflictError,
    CommitKeyError,
    DocumentTooLongError,
    UncommittedInvoiceError,
    UnknownCertificateError,
)
from finsync.systems.tax.liability import LiabilityRow
from finsync.systems.tax.migrate import upgrade
from finsync.systems.tax.service import TaxService
from tests.unit.tax.support import RULES, invoice_of, line, memo_of, request


def now() -> datetime:
    return datetime(2026, 3, 31, 12, tzinfo=UTC)


@pytest.fixture
def service(engine: Engine) -> TaxService:
    upgrade(engine)
    tax = TaxService(engine, now)
    tax.load_rules(RULES)
    return tax


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


def test_master_data_is_rewritten_only_when_the_file_differs(engine: Engine) -> None:
    upgrade(engine)
    assert TaxService(engine, now).load_rules(RULES) is True
    assert TaxService(engine, now).load_rules(RULES) is False
    assert TaxService(engine, now).rules().rates == tuple(sorted(
        RULES.rates, key=lambda r: (r.jurisdiction, r.tax_code, r.effective_from)))
    smaller = parse_tax_rules({"sellers": {"le_us": "US"}, "jurisdictions": [
        {"code": "US", "tax_type": "sales_tax", "levies_tax": False, "by_region": True}]})
    assert TaxService(engine, now).load_rules(smaller) is True
    # A service started later reads the stored rules: NY is gone, so it is refused.
    assert set(TaxService(engine, now).rules().jurisdictions) == {"US"}


def test_certificate_exempts_until_revoked(service: TaxService) -> None:
    ask = request("US", "NY", line("1000.00"))
    service.add_certificate(ExemptionCertificate("cert_ny", "cus_1", "US-NY",
                                                 date(2026, 1, 1), date(2027, 1, 1)))
    exempt = service.quote(ask).lines[0]
    assert (exempt.tax, exempt.details[0].treatment) == (usd("0.00"), TaxTreatment.EXEMPT)
    assert [c.id for c in service.certificates("cus_1")] == ["cert_ny"]
    service.revoke_certificate("cert_ny")
    assert service.quote(ask).lines[0].tax == usd("40.00")  # 1,000.00 x 4 %
    assert service.certificates()[0].revoked


def test_certificates_are_checked(service: TaxService) -> None:
    certificate = ExemptionCertificate("c1", "cus_1", "US-NY", date(2026, 1, 1))
    service.add_certificate(certificate)
    with pytest.raises(CertificateError, match="exists already"):
        service.add_certificate(certificate)
    with pytest.raises(CertificateError, match="unknown jurisdiction"):
        service.add_certificate(ExemptionCertificate("c2", "cus_1", "US-ZZ", date(2026, 1, 1)))
    with pytest.raises(UnknownCertificateError):
        service.revoke_certificate("c9")
    with pytest.raises(CertificateError, match="after valid_from"):
        ExemptionCertificate("c3", "cus_1", "US-NY", date(2026, 1, 1), date(2026, 1, 1))


def test_commit_is_idempotent_by_document_and_refuses_another_body(service: TaxService) -> None:
    ask = request("US", "NY", line("1000.00"))
    invoice = invoice_of(ask, service.quote(ask))
    first = service.commit(invoice, "evt_1:tax")
    assert (first.status, first.replayed) == ("committed", False)
    assert service.commit(invoice, "evt_1:tax").replayed        # the same key
    assert service.commit(invoice, "evt_2:tax").replayed        # a redelivery, another key
    assert service.find("evt_2:tax") is not None
    assert service.find("evt_9:tax") is None
    other = invoice_of(request("US", "NY", line("999.00")), service.quote(
        request("US", "NY", line("999.00"))))
    with pytest.raises(CommitConflictError):
        service.commit(other, "evt_3:tax")
    assert service.find("evt_3:tax") is None  # a refusal writes nothing
    with pytest.raises(CommitKeyError):
        service.commit(invoice, "k" * 513)


def test_a_kept_key_answers_only_the_document_committed_under_it(service: TaxService) -> None:
    """Like the ledger and the revenue engine: a known key is no licence for another body."""
    def invoice(amount: str, document_id: str = "inv_1") -> Invoice:
        ask = request("US", "NY", line(amount), document_id=document_id)
        return invoice_of(ask, service.quote(ask))

    first = invoice("1000.00")
    service.commit(first, "evt_1:tax")
    kept = service.find("evt_1:tax")
    for other in (invoice("1000.00", "inv_2"), invoice("999.00")):
        with pytest.raises(CommitConflictError, match="evt_1:tax"):
            service.commit(other, "evt_1:tax")
        assert service.find_many({"evt_1:tax": other}) == {}
    assert service.find_many({"evt_1:tax": first, "evt_9:tax": first}) == {"evt_1:tax": kept}
    assert service.commit(first, "evt_1:tax") == kept
    # The refusals wrote nothing: inv_2 is new to the engine under a key of its own.
    assert not service.commit(invoice("1000.00", "inv_2"), "evt_2:tax").replayed


def test_a_taxed_document_without_jurisdiction_lines_is_refused(service: TaxService) -> None:
    ask = request("US", "NY", line("1000.00"))
    invoice = invoice_of(ask, service.quote(ask))  # 40.00 of New York tax
    bare = replace(invoice, lines=tuple(replace(x, taxes=()) for x in invoice.lines))
    with pytest.raises(BreakdownMissingError):
        service.commit(bare, "evt_1:tax")


def test_an_untaxed_document_no_engine_quoted_is_recorded_in_no_jurisdiction(
        service: TaxService) -> None:
    # A source that sends no breakdown, with no tax on the document: nothing for any
    # jurisdiction, and nothing to refuse.
    ask = request("US", None, line("1000.00"))
    invoice = invoice_of(ask, service.quote(ask))  # "US": not taxable, 0.00
    bare = replace(invoice, lines=tuple(replace(x, taxes=()) for x in invoice.lines))
    first = service.commit(bare, "evt_1:tax")
    again = service.commit(bare, "evt_1:tax")
    assert (first.document_id, first.replayed) == (bare.id, False)
    assert (again.document_id, again.replayed) == (bare.id, True)
    assert service.liability("le_us", "2026-03") == ()


def test_void_before_its_invoice_is_refused_then_accepted(service: TaxService) -> None:
    ask = request("US", "NY", line("1000.00"))
    invoice = invoice_of(ask, service.quote(ask))
    void = memo_of(invoice, "cm_void", VOID, date(2026, 3, 20))
    with pytest.raises(UncommittedInvoiceError):
        service.commit(void, "evt_v:tax")
    service.commit(invoice, "evt_i:tax")
    assert service.commit(void, "evt_v:tax").status == "voided"
    (march,) = service.liability("le_us", "2026-03")  # 40.00 charged and credited
    assert (march.tax_charged, march.net_tax_due) == (usd("40.00"), usd("0.00"))


def test_liability_per_jurisdiction_for_the_month(service: TaxService) -> None:
    march = date(2026, 3, 10)

    def issue(document_id: str, region: str, amount: str, on: date = march,
              customer: str = "cus_1") -> Invoice:
        ask = request("US", region, line(amount), document_id=document_id, on=on,
                      customer=customer)
        invoice = invoice_of(ask, service.quote(ask))
        service.commit(invoice, f"{document_id}:tax")
        return invoice

    service.add_certificate(ExemptionCertificate("cert", "cus_2", "US-NY", date(2026, 1, 1)))
    ny = issue("inv_ny", "NY", "1000.00")      # tax 40.00
    issue("inv_ny2", "NY", "250.00")           # tax 10.00
    issue("inv_ca", "CA", "500.00")            # not taxable
    issue("inv_ex", "NY", "200.00", customer="cus_2")     # exempt by certificate
    issue("inv_april", "NY", "700.00", date(2026, 4, 1))  # another month
    voided = issue("inv_void", "NY", "300.00")            # voided below
    # A credit memo of a quarter of inv_ny: 250.00 of sales, 10.00 of tax credited.
    service.commit(memo_of(ny, "cm_ny", "sla_credit", date(2026, 3, 25), Decimal("0.25")),
                   "cm_ny:tax")
    service.commit(memo_of(voided, "cm_void", VOID, date(2026, 3, 26)), "cm_void:tax")
    assert service.liability("le_us", "2026-03") == (
        LiabilityRow("US-CA", "USD", usd("0.00"), usd("0.00"), usd("500.00"), usd("0.00"),
                     usd("0.00"), usd("0.00")),
        # taxable 1,000.00 + 250.00 + 300.00 - 250.00 - 300.00 credited = 1,000.00; tax
        # 40.00 + 10.00 + 12.00 = 62.00 charged, 10.00 + 12.00 (the void) credited: 40.00 due.
        LiabilityRow("US-NY", "USD", usd("1000.00"), usd("200.00"), usd("0.00"), usd("0.00"),
                     usd("62.00"), usd("22.00")),
    )
    assert service.liability("le_us", "2026-03")[1].net_tax_due == usd("40.00")
    assert service.liability("le_eu", "2026-03") == ()
    assert service.liability("le_us", "2026-04")[0].tax_charged == usd("28.00")  # 700 x 4 %


def test_tax_migrations_produce_exactly_its_declared_tables(engine: Engine) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from finsync.systems.tax.tables import metadata

    upgrade(engine)
    tax_tables = set(metadata.tables)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={
            "include_name": lambda name, kind, _p: kind != "table" or name in tax_tables})
        assert compare_metadata(context, metadata) == []


def test_liability_for_a_quarter_and_a_year(service: TaxService) -> None:
    # 1,000.00 in March (40.00) and 500.00 in April (20.00), New York 4 %.
    for document_id, on, amount in (("inv_mar", date(2026, 3, 31), "1000.00"),
                                     ("inv_apr", date(2026, 4, 1), "500.00")):
        ask = request("US", "NY", line(amount), document_id=document_id, on=on)
        service.commit(invoice_of(ask, service.quote(ask)), f"{document_id}:tax")
    assert service.liability("le_us", "2026-Q1")[0].tax_charged == usd("40.00")
    assert service.liability("le_us", "2026-Q2")[0].tax_charged == usd("20.00")
    assert service.liability("le_us", "2026")[0].tax_charged == usd("60.00")
    assert service.liability("le_us", "2025") == ()


def test_ids_longer_than_the_tables_hold_are_refused_by_name(service: TaxService) -> None:
    ask = request("US", "NY", line("10.00"), document_id="inv_" + "x" * 300)
    with pytest.raises(DocumentTooLongError, match=r"document id .* longer than 255"):
        service.commit(invoice_of(ask, service.quote(ask)), "evt_1:tax")
    assert service.find("evt_1:tax") is None


def test_a_later_void_credits_its_own_period_and_leaves_the_filed_one(
        service: TaxService) -> None:
    # January's 40.00 of New York tax was filed; the invoice is voided in March: January
    # still owes 40.00, March credits 40.00 (as the ledger books the void memo in March).
    ask = request("US", "NY", line("1000.00"), on=date(2026, 1, 15))
    invoice = invoice_of(ask, service.quote(ask))
    service.commit(invoice, "inv_1:tax")
    assert service.commit(memo_of(invoice, "cm_void", VOID, date(2026, 3, 2)),
                          "cm_void:tax").status == "voided"
    (january,) = service.liability("le_us", "2026-01")
    (march,) = service.liability("le_us", "2026-03")
    assert (january.tax_charged, january.net_tax_due) == (usd("40.00"), usd("40.00"))
    assert (march.tax_credited, march.net_tax_due) == (usd("40.00"), usd("-40.00"))
    assert sum((r.net_tax_due for r in service.liability("le_us", "2026")),
               usd("0.00")) == usd("0.00")
