"""The tax-port contract, run against the embedded engine and the same engine over HTTP
(`finsync tax serve`'s app, served by uvicorn), on SQLite and PostgreSQL.

A connector to another engine runs the same `TaxPortContract` by defining a `harness`
fixture: a tax port on an empty engine holding the default rules (default_tax.toml), and a
way to read its liability report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import Engine

from finsync.connectors.embedded.tax import EmbeddedTax
from finsync.connectors.ports import DeliveryContext, TaxPort
from finsync.connectors.taxhttp.client import HttpTax
from finsync.connectors.taxhttp.server import create_tax_app
from finsync.domain.errors import ExceptionClass, PermanentError, TransientError
from finsync.domain.invoice import VOID, Invoice
from finsync.domain.money import Money
from finsync.domain.tax import TaxRefusedError, TaxTreatment
from finsync.systems.tax.config_file import load_tax_rules
from finsync.systems.tax.liability import LiabilityRow
from finsync.systems.tax.migrate import upgrade
from finsync.systems.tax.service import TaxService
from tests.unit.tax.httpkit import running
from tests.unit.tax.support import invoice_of, line, memo_of, request

MARCH = date(2026, 3, 10)


@dataclass
class TaxHarness:
    port: TaxPort
    liability: Callable[[str, str], tuple[LiabilityRow, ...]]


def ctx(key: str) -> DeliveryContext:
    return DeliveryContext(f"{key}:tax", key, f"corr_{key}")


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


class TaxPortContract:
    def invoice(self, harness: TaxHarness, document_id: str, amount: str,
                region: str = "NY") -> Invoice:
        ask = request("US", region, line(amount), document_id=document_id, on=MARCH)
        return invoice_of(ask, harness.port.quote(ask))

    def test_quote_answers_the_jurisdiction_lines(self, harness: TaxHarness) -> None:
        # New York, 4 %: 1,000.00 x 0.04 = 40.00; California does not tax SaaS.
        ny = harness.port.quote(request("US", "NY", line("1000.00"))).lines[0]
        assert (ny.tax, ny.details[0].jurisdiction) == (usd("40.00"), "US-NY")
        ca = harness.port.quote(request("US", "CA", line("1000.00"))).lines[0]
        assert (ca.tax, ca.details[0].treatment) == (usd("0.00"), TaxTreatment.NOT_TAXABLE)

    def test_quote_refuses_an_unknown_jurisdiction(self, harness: TaxHarness) -> None:
        with pytest.raises(TaxRefusedError) as caught:
            harness.port.quote(request("US", "ZZ", line("1000.00")))
        assert caught.value.code == "unknown_tax_jurisdiction"
        assert caught.value.exception_class is ExceptionClass.TAX_FAILURE

    def test_commit_is_idempotent(self, harness: TaxHarness) -> None:
        invoice = self.invoice(harness, "inv_1", "1000.00")
        first = harness.port.commit_invoice(invoice, ctx("evt_1"))
        again = harness.port.commit_invoice(invoice, ctx("evt_1"))
        other_key = harness.port.commit_invoice(invoice, ctx("evt_2"))
        assert first.external_id == again.external_id == other_key.external_id == "tax:inv_1"
        assert (first.detail["replayed"], other_key.detail["replayed"]) == ("false", "true")
        assert harness.port.find_receipt("evt_1:tax") == again
        assert harness.port.find_receipt("evt_9:tax") is None
        # Committed once: 40.00 of tax in March.
        assert harness.liability("le_us", "2026-03")[0].tax_charged == usd("40.00")

    def test_another_body_under_a_committed_id_is_refused(self, harness: TaxHarness) -> None:
        harness.port.commit_invoice(self.invoice(harness, "inv_1", "1000.00"), ctx("evt_1"))
        with pytest.raises(PermanentError) as caught:
            harness.port.commit_invoice(self.invoice(harness, "inv_1", "999.00"), ctx("evt_2"))
        assert caught.value.exception_class is ExceptionClass.TAX_FAILURE
        assert "tax_commit_conflict" in str(caught.value)
        assert harness.port.find_receipt("evt_2:tax") is None

    def test_void_credits_the_invoice_in_the_liability(self, harness: TaxHarness) -> None:
        invoice = self.invoice(harness, "inv_1", "1000.00")
        void = memo_of(invoice, "cm_1", VOID, date(2026, 3, 20))
        with pytest.raises(TransientError) as early:
            harness.port.commit_credit_memo(void, ctx("evt_v"))  # before its invoice
        assert early.value.exception_class is ExceptionClass.SEQUENCING_ERROR
        harness.port.commit_invoice(invoice, ctx("evt_i"))
        receipt = harness.port.commit_credit_memo(void, ctx("evt_v"))
        assert receipt.detail["status"] == "voided"
        # Voided in the month it was issued: charged and credited in March, nothing due.
        (march,) = harness.liability("le_us", "2026-03")
        assert march.tax_charged == march.tax_credited and march.tax_charged.amount > 0
        assert march.net_tax_due.is_zero and march.taxable_sales.is_zero

    def test_liability_nets_credit_memos(self, harness: TaxHarness) -> None:
        invoice = self.invoice(harness, "inv_1", "1000.00")
        harness.port.commit_invoice(invoice, ctx("evt_1"))
        harness.port.commit_invoice(self.invoice(harness, "inv_2", "500.00", "CA"),
                                    ctx("evt_2"))
        # A 10 % SLA credit: 100.00 of sales and 4.00 of tax back.
        memo = memo_of(invoice, "cm_1", "sla_credit", date(2026, 3, 31), Decimal("0.1"))
        harness.port.commit_credit_memo(memo, ctx("evt_3"))
        ca, ny = harness.liability("le_us", "2026-03")
        assert (ca.jurisdiction, ca.not_taxable_sales, ca.net_tax_due) == (
            "US-CA", usd("500.00"), usd("0.00"))
        # 1,000.00 - 100.00 = 900.00 taxable; 40.00 charged - 4.00 credited = 36.00 due
        assert (ny.jurisdiction, ny.taxable_sales, ny.tax_charged, ny.tax_credited,
                ny.net_tax_due) == ("US-NY", usd("900.00"), usd("40.00"), usd("4.00"),
                                    usd("36.00"))

    def test_reverse_charge_is_reported_apart(self, harness: TaxHarness) -> None:
        # le_eu (DE) to a French business: 1,000.00 EUR reverse charged, no tax; a quote
        # alone commits nothing.
        ask = request("FR", None, line("1000.00", "EUR"), entity="le_eu", currency="EUR",
                      tax_id="FR40303265045", document_id="inv_fr", on=MARCH)
        result = harness.port.quote(ask)
        assert harness.liability("le_eu", "2026-03") == ()
        harness.port.commit_invoice(invoice_of(ask, result), ctx("evt_fr"))
        (fr,) = harness.liability("le_eu", "2026-Q1")
        assert (fr.jurisdiction, fr.reverse_charge_sales, fr.net_tax_due) == (
            "FR", Money.of("1000.00", "EUR"), Money.of("0.00", "EUR"))


def now() -> datetime:
    return datetime(2026, 3, 31, 12, tzinfo=UTC)


TOKEN = "test-tax-token"


def embedded_service(engine: Engine) -> TaxService:
    upgrade(engine)
    service = TaxService(engine, now)
    service.load_rules(load_tax_rules())
    return service


class TestEmbeddedTax(TaxPortContract):
    @pytest.fixture
    def harness(self, engine: Engine) -> TaxHarness:
        service = embedded_service(engine)
        port: TaxPort = EmbeddedTax("tax", service)
        assert isinstance(port, TaxPort)
        return TaxHarness(port, service.liability)


class TestHttpTax(TaxPortContract):
    @pytest.fixture
    def harness(self, engine: Engine) -> Iterator[TaxHarness]:
        service = embedded_service(engine)
        with running(create_tax_app(EmbeddedTax("tax", service), TOKEN)) as url:
            port: TaxPort = HttpTax("tax", url, TOKEN, timeout_s=5.0)
            assert isinstance(port, TaxPort)
            yield TaxHarness(port, service.liability)
