"""Credit lines inside invoices, voids and write-offs, through the pure posting core
(documents.py, rules.py). Accounts of the default chart: 1200 receivable, 2100 tax payable,
2300 customer credits, 2400 deferred revenue, 4000 revenue, 6900 bad debt, 7900 FX."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest

from finsync.domain.invoice import VOID, WRITE_OFF, CreditMemo, DocumentLine, Invoice
from finsync.domain.journal import JournalEntry, JournalLine, Side
from finsync.domain.money import Money, total
from finsync.systems.ledger.ar import ItemKind, settle
from finsync.systems.ledger.chart import Chart, Role
from finsync.systems.ledger.documents import Books, post_credit_memo, post_invoice
from finsync.systems.ledger.errors import ChartError
from finsync.systems.ledger.fx import Rate, RateTable
from finsync.systems.ledger.rules import AccountMap
from tests.ledgerkit import CHART, invoice

RATES = RateTable([Rate("EUR", "USD", date(2026, 1, 1), Decimal("1.10"))])
ON = date(2026, 1, 15)


def _books(chart: Chart = CHART, accounts: AccountMap | None = None) -> Books:
    return Books("le_us", "USD", chart, accounts or AccountMap(),
                 lambda m: RATES.convert(m, "USD", ON))


def _net(lines: tuple[JournalLine, ...], account: str) -> Decimal:
    return sum((ln.amount.amount if ln.side is Side.DEBIT else -ln.amount.amount
                for ln in lines if ln.account == account), Decimal(0))


def _balanced(lines: tuple[JournalLine, ...]) -> None:
    JournalEntry("je", "le_us", ON, "check", lines)  # raises when unbalanced


def test_a_proration_credit_line_posts_as_a_debit_of_the_same_account() -> None:
    # 500 -> 800 seats mid-period: unused time -2 500.00, remaining time 4 000.00.
    # Dr 1200 1 500.00, Dr 2400 2 500.00 / Cr 2400 4 000.00
    posting = post_invoice(invoice("inv_1", ["-2500.00", "4000.00"]), _books())
    _balanced(posting.lines)
    assert [(ln.account, ln.side.value, str(ln.amount.amount)) for ln in posting.lines] == [
        ("1200", "debit", "1500.00"), ("2400", "debit", "2500.00"),
        ("2400", "credit", "4000.00")]
    assert posting.opened[0].open == Money.of("1500.00", "USD")


def test_a_foreign_invoice_with_a_credit_line_converts_each_side_once() -> None:
    # EUR at 1.10: debits 1 500 + 2 500 = 4 000 EUR -> 4 400.00 USD (1 650.00 + 2 750.00),
    # credits 4 000 EUR -> 4 400.00 USD: balanced, no FX difference.
    posting = post_invoice(invoice("inv_1", ["-2500.00", "4000.00"], currency="EUR"),
                           _books())
    _balanced(posting.lines)
    assert _net(posting.lines, "1200") == Decimal("1650.00")
    assert _net(posting.lines, "2400") == Decimal("-1650.00")
    assert _net(posting.lines, "7900") == 0
    assert posting.opened[0].booked_open == Money.of("1650.00", "USD")


def test_an_invoice_that_credits_more_than_it_bills_credits_the_customer() -> None:
    # 800 -> 500 seats: -4 000.00 + 2 500.00 = -1 500.00: nothing owed, a credit of 1 500.00.
    posting = post_invoice(invoice("inv_1", ["-4000.00", "2500.00"]), _books())
    _balanced(posting.lines)
    assert _net(posting.lines, "2400") == Decimal("1500.00")
    assert _net(posting.lines, "2300") == Decimal("-1500.00")
    assert _net(posting.lines, "1200") == 0
    owed, credit = posting.opened
    assert owed.kind is ItemKind.INVOICE and owed.open.is_zero
    assert (credit.id, credit.kind, credit.open) == ("inv_1:credit", ItemKind.CREDIT,
                                                     Money.of("1500.00", "USD"))


def _memo(inv: Invoice, memo_id: str, reason: str, lines: tuple[DocumentLine, ...],
          applied: Money | None = None) -> CreditMemo:
    currency = inv.currency
    subtotal = total([li.amount for li in lines], currency)
    tax = total([li.tax_amount for li in lines], currency)
    return CreditMemo(memo_id, memo_id.upper(), inv.id, inv.customer_id, inv.legal_entity,
                      currency, date(2026, 1, 20), reason, lines, subtotal, tax,
                      subtotal + tax, applied_to_invoice=applied)


def test_a_void_reverses_the_invoice_account_by_account() -> None:
    # Seats deferred (2400), services recognised on invoice (4000), 10.00 tax each line.
    accounts = AccountMap(recognised_on_invoice=frozenset({"prod_services"}))
    inv = invoice("inv_1", ["300.00", "100.00"], tax="10.00",
                  products=["prod_seat", "prod_services"])
    posted = post_invoice(inv, _books(accounts=accounts))
    void = post_credit_memo(_memo(inv, "inv_1_void", VOID, inv.lines),
                            _books(accounts=accounts), posted.opened[0])
    _balanced(void.lines)
    for account in ("1200", "2100", "2400", "4000"):
        assert _net(posted.lines, account) + _net(void.lines, account) == 0, account
    assert void.settled[0].item.open.is_zero and void.opened == ()


def test_a_write_off_is_bad_debt_and_leaves_the_tax_owed() -> None:
    # 440.00 billed (40.00 tax), 140.00 paid, 300.00 written off: Dr 6900 / Cr 1200.
    inv = invoice("inv_1", ["300.00", "100.00"], tax="20.00")
    item = settle(post_invoice(inv, _books()).opened[0], Money.of("140.00", "USD")).item
    lines = (replace(inv.lines[0], amount=Money.of("225.00", "USD"),
                     tax_amount=Money.zero("USD")),
             replace(inv.lines[1], amount=Money.of("75.00", "USD"),
                     tax_amount=Money.zero("USD")))
    memo = _memo(inv, "inv_1_uncollectible", WRITE_OFF, lines, Money.of("300.00", "USD"))
    posting = post_credit_memo(memo, _books(), item)
    _balanced(posting.lines)
    assert _net(posting.lines, "6900") == Decimal("300.00")
    assert _net(posting.lines, "1200") == Decimal("-300.00")
    assert _net(posting.lines, "2100") == 0 and _net(posting.lines, "2400") == 0
    assert posting.settled[0].item.open.is_zero


def test_a_chart_without_a_bad_debt_account_loads_but_refuses_a_write_off() -> None:
    # A chart stored before the role existed.
    older = Chart(tuple(a for a in CHART.accounts if a.role is not Role.BAD_DEBT))
    inv = invoice("inv_1", ["100.00"])
    item = post_invoice(inv, _books(older)).opened[0]
    memo = _memo(inv, "inv_1_uncollectible", WRITE_OFF, inv.lines, inv.total)
    with pytest.raises(ChartError, match="bad_debt"):
        post_credit_memo(memo, _books(older), item)
