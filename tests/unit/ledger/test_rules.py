"""Posting rules and FX, through the pure core (documents.py, rules.py)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from finsync.domain.journal import JournalEntry, Side
from finsync.domain.money import Money
from finsync.systems.ledger.ar import ItemKind, OpenItem, aging, settle
from finsync.systems.ledger.documents import Books, post_credit_memo, post_invoice, post_payment
from finsync.systems.ledger.errors import FxRateMissingError, UnknownDocumentError
from finsync.systems.ledger.fx import Rate, RateTable
from finsync.systems.ledger.rules import AccountMap
from tests.ledgerkit import CHART, credit_memo, invoice, payment

RATES = RateTable([Rate("EUR", "USD", date(2026, 1, 1), Decimal("1.10")),
                   Rate("EUR", "USD", date(2026, 3, 1), Decimal("1.20"))])


def _books(on: date, accounts: AccountMap | None = None) -> Books:
    return Books("le_us", "USD", CHART, accounts or AccountMap(),
                 lambda m: RATES.convert(m, "USD", on))


def _net(lines: tuple, account: str) -> Decimal:  # type: ignore[type-arg]
    return sum((ln.amount.amount if ln.side is Side.DEBIT else -ln.amount.amount
                for ln in lines if ln.account == account), Decimal(0))


def _balanced(lines: tuple) -> None:  # type: ignore[type-arg]
    JournalEntry("je", "le_us", date(2026, 1, 1), "check", lines)  # raises when unbalanced


def test_invoice_debits_ar_and_defers_revenue_and_tax() -> None:
    posting = post_invoice(invoice("inv_1", ["100.00", "50.00"], tax="10.00"),
                           _books(date(2026, 1, 15)))
    _balanced(posting.lines)
    assert _net(posting.lines, "1200") == Decimal("170.00")
    assert _net(posting.lines, "2400") == Decimal("-150.00")
    assert _net(posting.lines, "2100") == Decimal("-20.00")
    assert posting.opened[0].booked_open == Money.of("170.00", "USD")


def test_product_recognised_on_invoice_credits_revenue() -> None:
    accounts = AccountMap(recognised_on_invoice=frozenset({"prod_services"}))
    posting = post_invoice(invoice("inv_1", ["100.00", "30.00"],
                                   products=["prod_seat", "prod_services"]),
                           _books(date(2026, 1, 15), accounts))
    assert _net(posting.lines, "4000") == Decimal("-30.00")
    assert _net(posting.lines, "2400") == Decimal("-100.00")


def test_foreign_invoice_converts_once_and_splits_by_largest_remainder() -> None:
    # 3 lines of 0.01 EUR at 1.10 = 0.033 -> 0.03 USD in all; split 0.01 each, exactly.
    posting = post_invoice(invoice("inv_1", ["0.01", "0.01", "0.01"], currency="EUR"),
                           _books(date(2026, 1, 15)))
    _balanced(posting.lines)
    assert _net(posting.lines, "1200") == Decimal("0.03")
    assert all(ln.transaction_amount is not None for ln in posting.lines)


def test_settlement_at_a_new_rate_books_realised_fx() -> None:
    # Invoice 1000 EUR at 1.10 = 1100 USD; paid in March at 1.20 = 1200 USD: gain 100 USD.
    inv = post_invoice(invoice("inv_1", ["1000.00"], currency="EUR"), _books(date(2026, 1, 15)))
    pay = post_payment(payment("pay_1", "1000.00", {"inv_1": "1000.00"}, currency="EUR",
                               on=date(2026, 3, 5)),
                       _books(date(2026, 3, 5)), {"inv_1": inv.opened[0]})
    _balanced(pay.lines)
    assert _net(pay.lines, "1000") == Decimal("1200.00")
    assert _net(pay.lines, "1200") == Decimal("-1100.00")
    assert _net(pay.lines, "7900") == Decimal("-100.00")  # a gain is a credit
    assert pay.settled[0].item.open.is_zero and pay.settled[0].item.booked_open.is_zero


def test_credit_beyond_what_the_invoice_owes_becomes_customer_credit() -> None:
    inv = post_invoice(invoice("inv_1", ["100.00"]), _books(date(2026, 1, 15)))
    paid = settle(inv.opened[0], Money.of("80.00", "USD")).item
    memo = post_credit_memo(credit_memo("cm_1", "inv_1", "50.00"), _books(date(2026, 2, 1)),
                            paid)
    _balanced(memo.lines)
    assert _net(memo.lines, "1200") == Decimal("-20.00")
    assert _net(memo.lines, "2300") == Decimal("-30.00")
    assert memo.opened[0].kind is ItemKind.CREDIT


def test_goodwill_credit_debits_sales_allowances() -> None:
    inv = post_invoice(invoice("inv_1", ["100.00"]), _books(date(2026, 1, 15)))
    memo = post_credit_memo(credit_memo("cm_1", "inv_1", "10.00", reason="goodwill"),
                            _books(date(2026, 2, 1)), inv.opened[0])
    assert _net(memo.lines, "4900") == Decimal("10.00")


def test_credit_memo_for_an_unposted_invoice_is_refused() -> None:
    with pytest.raises(UnknownDocumentError, match="has not posted"):
        post_credit_memo(credit_memo("cm_1", "inv_x", "10.00"), _books(date(2026, 2, 1)), None)


def test_missing_rate_is_an_error_not_a_guess() -> None:
    with pytest.raises(FxRateMissingError, match="GBP/USD"):
        post_invoice(invoice("inv_1", ["10.00"], currency="GBP"), _books(date(2026, 1, 15)))
    with pytest.raises(FxRateMissingError, match="effective on 2025-12-31"):
        RATES.rate("EUR", "USD", date(2025, 12, 31))  # no rate yet: none is invented
    with pytest.raises(FxRateMissingError):
        RATES.rate("USD", "EUR", date(2026, 6, 1))  # nor an inverse


def test_partial_settlement_relieves_pro_rata_and_the_rest_exactly() -> None:
    item = OpenItem("inv_1", "le_us", "c", ItemKind.INVOICE, "inv_1", Money.of("3.00", "EUR"),
                    Money.of("3.00", "EUR"), Money.of("3.31", "USD"), date(2026, 1, 1),
                    date(2026, 1, 31))
    first = settle(item, Money.of("1.00", "EUR"))
    second = settle(first.item, Money.of("2.00", "EUR"))
    assert first.relieved + second.relieved == Money.of("3.31", "USD")


def test_aging_buckets_by_days_past_due() -> None:
    def item(due: date, amount: str) -> OpenItem:
        m = Money.of(amount, "USD")
        return OpenItem(str(due), "le_us", "c", ItemKind.INVOICE, str(due), m, m, m, due, due)
    buckets = aging([item(date(2026, 3, 1), "1.00"), item(date(2026, 2, 1), "2.00"),
                     item(date(2025, 11, 1), "4.00")], date(2026, 3, 1), "USD")
    assert {k: str(v.amount) for k, v in buckets.items()} == {
        "current": "1.00", "1-30": "2.00", "31-60": "0.00", "61-90": "0.00", "90+": "4.00"}
