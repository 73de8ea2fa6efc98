"""Credit lines inside invoices, negative invoices, voids and write-offs through the embedded
ledger's storage, on SQLite and PostgreSQL: the entries are stored, the AR subledger still
equals its control accounts, and the same posting again changes nothing."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import Engine

from finsync.domain.invoice import VOID, WRITE_OFF, CreditMemo, DocumentLine, Invoice
from finsync.domain.money import Money, total
from finsync.systems.ledger.service import LedgerService
from tests.ledgerkit import invoice, ledger_service, payment

AS_OF = date(2026, 12, 31)


@pytest.fixture
def service(engine: Engine) -> LedgerService:
    return ledger_service(engine)


def _memo(inv: Invoice, memo_id: str, reason: str, lines: tuple[DocumentLine, ...],
          applied: Money | None = None) -> CreditMemo:
    subtotal = total([li.amount for li in lines], inv.currency)
    tax = total([li.tax_amount for li in lines], inv.currency)
    return CreditMemo(memo_id, memo_id.upper(), inv.id, inv.customer_id, inv.legal_entity,
                      inv.currency, date(2026, 2, 1), reason, lines, subtotal, tax,
                      subtotal + tax, applied_to_invoice=applied)


def _balances(service: LedgerService) -> dict[str, Decimal]:
    return {row.account: row.balance.amount for row in service.trial_balance("le_us", AS_OF)
            if not row.balance.is_zero}


def _subledger_agrees(service: LedgerService) -> None:
    for check in service.subledger_check("le_us", AS_OF).values():
        assert check["difference"] == "0.00", check


def test_proration_credits_voids_and_write_offs_keep_the_books(service: LedgerService) -> None:
    # inv_up: 500 -> 800 seats, -2 500.00 + 4 000.00 = 1 500.00 owed
    # inv_down: 800 -> 500 seats, -4 000.00 + 2 500.00: 1 500.00 credited to cus_1
    # inv_void: 300.00 + 10.00 tax, voided
    # inv_wo: 400.00 + 40.00 tax, 140.00 paid, 300.00 written off
    up = invoice("inv_up", ["-2500.00", "4000.00"])
    down = invoice("inv_down", ["-4000.00", "2500.00"])
    voided = invoice("inv_void", ["300.00"], tax="10.00")
    owed = invoice("inv_wo", ["300.00", "100.00"], tax="20.00")
    calls = [(service.post_invoice, up, "k-up"), (service.post_invoice, down, "k-down"),
             (service.post_invoice, voided, "k-void-inv"), (service.post_invoice, owed, "k-wo"),
             (service.post_credit_memo, _memo(voided, "inv_void_void", VOID, voided.lines),
              "k-void"),
             (service.post_payment, payment("pay_1", "140.00", {"inv_wo": "140.00"}), "k-pay")]
    written_off = (replace(owed.lines[0], amount=Money.of("225.00", "USD"),
                           tax_amount=Money.zero("USD")),
                   replace(owed.lines[1], amount=Money.of("75.00", "USD"),
                           tax_amount=Money.zero("USD")))
    calls.append((service.post_credit_memo,
                  _memo(owed, "inv_wo_uncollectible", WRITE_OFF, written_off,
                        Money.of("300.00", "USD")), "k-wo-memo"))
    for post, document, key in calls:
        assert not post(document, key).replayed  # type: ignore[operator]
    # receivable: 1 500.00 (inv_up) + 0 + 0 + 0; customer credits: 1 500.00 (inv_down)
    # deferred revenue: -1 500.00 + 1 500.00 + 0 (voided) - 400.00 = -400.00
    # tax payable: 0 (voided) - 40.00 (still owed after the write-off); bad debt 300.00
    assert _balances(service) == {"1000": Decimal("140.00"), "1200": Decimal("1500.00"),
                                  "2100": Decimal("-40.00"), "2300": Decimal("-1500.00"),
                                  "2400": Decimal("-400.00"), "6900": Decimal("300.00")}
    _subledger_agrees(service)
    open_items = {i.id: str(i.open.amount) for i in service.open_items("le_us", AS_OF)
                  if not i.open.is_zero}
    assert open_items == {"inv_up": "1500.00", "inv_down:credit": "1500.00"}
    for post, document, key in calls:
        assert post(document, key).replayed  # type: ignore[operator]
