"""The revenue-port contract: what every revenue-engine connector must do.

A test module runs it by defining a `harness` fixture (see `RevenueHarness`); the embedded
engine runs it in test_revenue_port.py on SQLite and PostgreSQL, and a connector to a
commercial engine would run the very same suite against its sandbox.

The reference amendment (DESIGN §4): 500 seats x 120.00/yr from 2026-01-01, amended on
2026-05-16 to 800 seats plus premium analytics at 24,000.00/yr, both at their SSPs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import pytest

from finsync.connectors.ports import DeliveryContext, Receipt, RevenueBooksPort, RevenuePort
from finsync.domain.catalog import BillingFrequency
from finsync.domain.clock import Period
from finsync.domain.contract import ContractAmendment, ContractLine, SubscriptionContract
from finsync.domain.errors import ExceptionClass, PermanentError, TransientError
from finsync.domain.invoice import CreditMemo, DocumentLine, Invoice
from finsync.domain.journal import Side
from finsync.domain.money import Money, total

START, END, UPGRADE = date(2026, 1, 1), date(2027, 1, 1), date(2026, 5, 16)
SEAT, ANALYTICS = "prod_platform_seat", "prod_premium_analytics"
SSPS = {SEAT: "120.00", ANALYTICS: "24000.00"}  # what the harness's catalog must hold


@dataclass
class RevenueHarness:
    """A revenue port on an empty engine whose SSP catalog holds `SSPS` (from 2000-01-01)."""

    port: RevenuePort


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


def ctx(key: str) -> DeliveryContext:
    return DeliveryContext(key, f"evt-{key}", "quote_acme")


def contract(seats: int = 500, analytics: str | None = None,
             version: int = 1) -> SubscriptionContract:
    lines = [ContractLine("ln_seats", SEAT, "price_seat", seats, usd("120.00"), START, END)]
    if analytics is not None:
        lines.append(ContractLine("ln_analytics", ANALYTICS, "price_analytics", 1,
                                  usd(analytics), UPGRADE, END))
    return SubscriptionContract("con_acme", "cus_acme", "le_us", "USD", START, END,
                                BillingFrequency.ANNUAL, tuple(lines), version)


def amendment(analytics: str = "24000.00") -> ContractAmendment:
    return ContractAmendment("amd_acme_0002", "con_acme", 2, UPGRADE, "upgrade", (),
                             contract(800, analytics, version=2))


def invoice(invoice_id: str, on: date, amounts: dict[str, str]) -> Invoice:
    lines = tuple(DocumentLine(str(i), product, product, 1, usd(amount), usd("0"), on, END)
                  for i, (product, amount) in enumerate(amounts.items()))
    subtotal = total([li.amount for li in lines], "USD")
    return Invoice(invoice_id, invoice_id.upper(), "cus_acme", "con_acme", 1, "le_us", "USD",
                   on, on, lines, subtotal, usd("0"), subtotal)


def sla_credit(memo_id: str, invoice_id: str, amount: str) -> CreditMemo:
    line = DocumentLine("0", ANALYTICS, "SLA credit July", 1, usd(amount), usd("0"),
                        date(2026, 7, 1), date(2026, 8, 1))
    return CreditMemo(memo_id, memo_id.upper(), invoice_id, "cus_acme", "le_us", "USD",
                      date(2026, 8, 5), "sla_credit", (line,), usd(amount), usd("0"),
                      usd(amount))


def _schedule_refs(receipt: Receipt) -> dict[str, str]:
    return {r.canonical_id: r.external_id for r in receipt.references
            if r.object_type == "revenue_schedule"}


def _snapshot(port: RevenuePort) -> list[tuple[str, str, int]]:
    return [(s.reference, str(s.allocated_price), len(s.lines))
            for s in port.schedules("con_acme")]


def _upgraded(port: RevenuePort) -> Receipt:
    port.apply_contract(contract(), None, ctx("k-book"))
    port.record_invoice(invoice("inv_0001", START, {SEAT: "60000.00"}), ctx("k-inv1"))
    receipt = port.apply_contract(amendment().contract, amendment(), ctx("k-amd"))
    port.record_invoice(invoice("inv_0002", UPGRADE, {SEAT: "22684.93",
                                                      ANALYTICS: "15123.29"}), ctx("k-inv2"))
    return receipt


class RevenuePortContract:
    def test_positions_over_many_days_are_the_positions_of_each_day(
            self, harness: RevenueHarness) -> None:
        """Reconciliation's one-pass read (`positions_over`) answers, per contract, what
        `positions(day)` answers for each day, in the order of the days asked."""
        port = harness.port
        assert isinstance(port, RevenueBooksPort), "the embedded engine reads in one pass"
        _upgraded(port)
        port.apply_credit_memo(sla_credit("cm_0001", "inv_0002", "200.00"), ctx("k-cm"))
        days = [START, UPGRADE, date(2026, 7, 1), END]
        rows = list(port.positions_over("le_us", days))
        assert [[p.subscription_contract_id for p in row] for row in rows] == [["con_acme"] * 4]
        for n, day in enumerate(days):
            assert [row[n] for row in rows] == list(port.positions("le_us", day))
        assert list(port.positions_over("le_eu", days)) == []

    def test_booking_returns_versioned_schedule_references(
            self, harness: RevenueHarness) -> None:
        receipt = harness.port.apply_contract(contract(), None, ctx("k-book"))
        refs = _schedule_refs(receipt)
        assert list(refs) == ["con_acme/ln_seats@v1"]
        assert refs["con_acme/ln_seats@v1"].startswith("sch_")
        assert refs["con_acme/ln_seats@v1"].endswith("@v1")
        (schedule,) = harness.port.schedules("con_acme")
        assert schedule.reference == refs["con_acme/ln_seats@v1"]

    def test_same_key_again_returns_the_first_receipt_and_changes_nothing(
            self, harness: RevenueHarness) -> None:
        first = _upgraded(harness.port)
        before = _snapshot(harness.port)
        again = harness.port.apply_contract(amendment().contract, amendment(), ctx("k-amd"))
        assert again.external_id == first.external_id
        assert _schedule_refs(again) == _schedule_refs(first)
        assert again.detail["replayed"] == "true"
        assert _snapshot(harness.port) == before
        found = harness.port.find_receipt("k-amd")
        assert found is not None and _schedule_refs(found) == _schedule_refs(first)

    def test_same_key_with_another_body_is_refused(self, harness: RevenueHarness) -> None:
        harness.port.apply_contract(contract(), None, ctx("k-book"))
        with pytest.raises(PermanentError) as caught:
            harness.port.apply_contract(contract(seats=600), None, ctx("k-book"))
        assert caught.value.exception_class is ExceptionClass.DUPLICATE_EVENT

    def test_reference_amendment_returns_the_new_schedule_references(
            self, harness: RevenueHarness) -> None:
        receipt = _upgraded(harness.port)
        refs = _schedule_refs(receipt)
        assert set(refs) == {"con_acme/ln_seats@v1", "con_acme/ln_seats+v2@v1",
                             "con_acme/ln_analytics@v1"}
        assert receipt.detail["treatment"] == "separate_contract"
        assert receipt.detail["paragraph"] == "606-10-25-12"
        allocated = {s.obligation_id: s.allocated_price for s in
                     harness.port.schedules("con_acme")}
        assert allocated == {"ln_seats": usd("60000.00"), "ln_seats+v2": usd("22684.93"),
                             "ln_analytics": usd("15123.29")}

    def test_schedules_sum_to_their_allocated_prices(self, harness: RevenueHarness) -> None:
        _upgraded(harness.port)
        for schedule in harness.port.schedules("con_acme"):
            assert total([li.amount for li in schedule.lines], "USD") == \
                schedule.allocated_price

    def test_period_journals_balance_and_recognise_the_whole_price(
            self, harness: RevenueHarness) -> None:
        _upgraded(harness.port)
        revenue = Decimal(0)
        for month in range(1, 13):
            period = Period(date(2026, month, 1), date(2026 + month // 12, month % 12 + 1, 1))
            for entry in harness.port.period_journals("le_us", period, f"k-close-{month}"):
                debits = sum(li.amount.amount for li in entry.lines if li.side is Side.DEBIT)
                credits = sum(li.amount.amount for li in entry.lines if li.side is Side.CREDIT)
                assert debits == credits
                revenue += sum(li.amount.amount for li in entry.lines
                               if li.account == "4000" and li.side is Side.CREDIT)
                assert entry.source_refs
        assert revenue == Decimal("97808.22")

    def test_a_period_journal_once_answered_to_a_close_never_changes(
            self, harness: RevenueHarness) -> None:
        """July's journal is fixed when a close asks for it; the SLA credit for July issued
        in August does not change it (a later period catches it up)."""
        _upgraded(harness.port)
        july = Period(date(2026, 7, 1), date(2026, 8, 1))
        first = harness.port.period_journals("le_us", july, "k-close-07")
        harness.port.apply_credit_memo(sla_credit("cm_0001", "inv_0002", "200.00"),
                                       ctx("k-cm"))
        assert harness.port.period_journals("le_us", july, "k-close-07-again") == first

    def test_sla_credit_revises_the_analytics_schedule(self, harness: RevenueHarness) -> None:
        _upgraded(harness.port)
        receipt = harness.port.apply_credit_memo(sla_credit("cm_0001", "inv_0002", "200.00"),
                                                 ctx("k-cm"))
        assert "con_acme/ln_analytics@v2" in _schedule_refs(receipt)
        analytics = next(s for s in harness.port.schedules("con_acme")
                         if s.obligation_id == "ln_analytics")
        assert (analytics.version, analytics.allocated_price) == (2, usd("14923.29"))

    def test_amendment_before_its_contract_is_transient(self, harness: RevenueHarness) -> None:
        with pytest.raises(TransientError) as caught:
            harness.port.apply_contract(amendment().contract, amendment(), ctx("k-amd"))
        assert caught.value.exception_class is ExceptionClass.SEQUENCING_ERROR
        assert harness.port.find_receipt("k-amd") is None

    def test_invoice_before_the_amendment_it_bills_is_a_missing_reference_until_then(
            self, harness: RevenueHarness) -> None:
        harness.port.apply_contract(contract(), None, ctx("k-book"))
        upgrade = invoice("inv_2", UPGRADE, {SEAT: "22684.93", ANALYTICS: "15123.29"})
        with pytest.raises(TransientError) as caught:
            harness.port.record_invoice(upgrade, ctx("k-inv"))
        assert caught.value.exception_class is ExceptionClass.MISSING_REVREC_REFERENCE
        _upgraded(harness.port)
        assert harness.port.record_invoice(upgrade, ctx("k-inv")).references

    def test_credit_memo_before_its_invoice_is_transient(self, harness: RevenueHarness) -> None:
        harness.port.apply_contract(contract(), None, ctx("k-book"))
        with pytest.raises(TransientError) as caught:
            harness.port.apply_credit_memo(sla_credit("cm_1", "inv_9", "10.00"), ctx("k-cm"))
        assert caught.value.exception_class is ExceptionClass.SEQUENCING_ERROR

    def test_product_without_an_ssp_is_a_master_data_mismatch(
            self, harness: RevenueHarness) -> None:
        harness.port.apply_contract(contract(), None, ctx("k-book"))
        unknown = ContractAmendment("amd_x", "con_acme", 2, UPGRADE, "upgrade", (),
                                    SubscriptionContract(
                                        "con_acme", "cus_acme", "le_us", "USD", START, END,
                                        BillingFrequency.ANNUAL, (*contract().lines, ContractLine(
                                            "ln_x", "prod_unknown", "p", 1, usd("10.00"),
                                            UPGRADE, END)), 2))
        with pytest.raises(PermanentError) as caught:
            harness.port.apply_contract(unknown.contract, unknown, ctx("k-x"))
        assert caught.value.exception_class is ExceptionClass.MASTER_DATA_MISMATCH
        assert [s.version for s in harness.port.schedules("con_acme")] == [1]

    def test_unknown_contract_has_no_schedules(self, harness: RevenueHarness) -> None:
        assert list(harness.port.schedules("con_nobody")) == []
