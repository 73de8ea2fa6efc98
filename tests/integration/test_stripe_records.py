"""Stripe as billing's books (`StripeBillingRecords`) on both databases: what a Stripe
account's mirrored objects (current API shape) say as of a day.

The account, November 2026, USD (amounts in cents as Stripe sends them):
- in_a (cus_1, sub_1) 110.00 (100.00 + 10.00 tax), finalized 1 Nov; paid 60.00 on 3 Nov
  (pi_1) and 50.00 on 10 Nov (pi_2), two invoice payments. Credit note cn_2 on 12 Nov,
  after payment: 22.00 (20.00 before tax), credited to the customer's balance.
- in_b (cus_1, sub_1) 55.00 (50.00 + 5.00 tax), finalized 15 Nov with the customer's balance
  of -22.00 applied; credit note cn_1 before payment 11.00 (10.00 before tax) on 16 Nov;
  paid 10.00 on 20 Nov (pi_4).
- in_c (cus_2) 20.00, finalized 1 Nov, voided 6 Nov.
- in_d (cus_2) 30.00, finalized and paid on 7 Nov, before Stripe listed invoice payments
  (none mirrored): the payment is the one the mapping names, paid_out_of_band_in_d.
- pi_3 (cus_2) 40.00 on 8 Nov, paying no invoice (money on account); refund re_1 of 10.00
  of it on 9 Nov.
- in_e (cus_1) a draft; in_f (cus_3) 9.90 EUR, finalized 2 Nov.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy import Engine

from finsync.bootstrap import build_stripe_mirror
from finsync.connectors.ports import ContractDocument, CustomerAmount, DocumentAmount
from finsync.connectors.stripe.records import StripeBillingRecords, StripeBooks
from finsync.domain.money import Money
from tests.stripeshapes import event, listing, shaped, webhook
from tests.stripeshapes.company import at

Obj = dict[str, Any]
ENTITY = "le_us"


def nov(day: int) -> int:
    return at(2026, 11, day, 9)


def invoice(inv_id: str, customer: str, total: int, tax: int, finalized: int | None, *,
            sub: str | None = None, status: str = "open", paid: int = 0,
            paid_at: int | None = None, voided_at: int | None = None, balance: int = 0,
            currency: str = "usd") -> Obj:
    parent = None if sub is None else {"type": "subscription_details", "quote_details": None,
                                       "subscription_details": {"metadata": {},
                                                                "subscription": sub}}
    return shaped("invoice", id=inv_id, customer=customer, currency=currency, status=status,
                  created=finalized or nov(1), total=total, total_excluding_tax=total - tax,
                  amount_paid=paid, amount_remaining=total - paid, starting_balance=balance,
                  parent=parent, lines=listing([]),
                  status_transitions={"finalized_at": finalized, "paid_at": paid_at,
                                      "voided_at": voided_at, "marked_uncollectible_at": None})


def invoice_payment(ip_id: str, inv_id: str, intent: str, amount: int, paid_at: int) -> Obj:
    return shaped("invoice_payment", id=ip_id, invoice=inv_id, currency="usd",
                  amount_paid=amount, amount_requested=amount, status="paid", created=paid_at,
                  payment={"type": "payment_intent", "payment_intent": intent},
                  status_transitions={"canceled_at": None, "paid_at": paid_at})


def credit_note(cn_id: str, inv_id: str, customer: str, total: int, tax: int,
                created: int, kind: str) -> Obj:
    return shaped("credit_note", id=cn_id, invoice=inv_id, customer=customer, currency="usd",
                  total=total, total_excluding_tax=total - tax, subtotal=total - tax,
                  subtotal_excluding_tax=total - tax, amount=total, created=created,
                  effective_at=created, status="issued", voided_at=None, type=kind,
                  lines=listing([]), refunds=[])


def account() -> list[tuple[str, Obj, int]]:
    """(event type, object, when) of everything the account did."""
    sub = shaped("subscription", id="sub_1", customer="cus_1", currency="usd",
                 status="active", cancel_at=None, ended_at=None)
    pi_3 = shaped("payment_intent", id="pi_3", customer="cus_2", currency="usd",
                  amount=4_000, amount_received=4_000, status="succeeded", created=nov(8))
    refund = shaped("refund", id="re_1", charge="ch_3", payment_intent="pi_3", currency="usd",
                    amount=1_000, status="succeeded", created=nov(9))
    return [
        ("customer.subscription.created", sub, nov(1)),
        ("invoice.finalized", invoice("in_a", "cus_1", 11_000, 1_000, nov(1), sub="sub_1"),
         nov(1)),
        ("invoice.finalized", invoice("in_c", "cus_2", 2_000, 0, nov(1)), nov(1)),
        ("invoice.finalized", invoice("in_f", "cus_3", 990, 0, nov(2), currency="eur"),
         nov(2)),
        ("invoice_payment.paid", invoice_payment("inpay_1", "in_a", "pi_1", 6_000, nov(3)),
         nov(3)),
        ("invoice.voided", invoice("in_c", "cus_2", 2_000, 0, nov(1), status="void",
                                   voided_at=nov(6)), nov(6)),
        ("invoice.paid", invoice("in_d", "cus_2", 3_000, 0, nov(7), status="paid",
                                 paid=3_000, paid_at=nov(7)), nov(7)),
        ("payment_intent.succeeded", pi_3, nov(8)),
        ("refund.created", refund, nov(9)),
        ("invoice_payment.paid", invoice_payment("inpay_2", "in_a", "pi_2", 5_000, nov(10)),
         nov(10)),
        ("invoice.paid", invoice("in_a", "cus_1", 11_000, 1_000, nov(1), sub="sub_1",
                                 status="paid", paid=11_000, paid_at=nov(10)), nov(10)),
        ("credit_note.created", credit_note("cn_2", "in_a", "cus_1", 2_200, 200, nov(12),
                                            "post_payment"), nov(12)),
        ("invoice.finalized", invoice("in_b", "cus_1", 5_500, 500, nov(15), sub="sub_1",
                                      balance=-2_200), nov(15)),
        ("credit_note.created", credit_note("cn_1", "in_b", "cus_1", 1_100, 100, nov(16),
                                            "pre_payment"), nov(16)),
        ("invoice_payment.paid", invoice_payment("inpay_3", "in_b", "pi_4", 1_000, nov(20)),
         nov(20)),
        ("invoice.created", invoice("in_e", "cus_1", 700, 0, None, status="draft"), nov(21)),
    ]


@pytest.fixture
def books(engine: Engine) -> Iterator[StripeBooks]:
    mirror = build_stripe_mirror(engine)
    mirror.record("stripe", [webhook(event(kind, obj, evt=f"evt_{n}", created=when))
                             for n, (kind, obj, when) in enumerate(account())])
    with StripeBillingRecords("stripe", engine, "stripe", ENTITY).books() as snapshot:
        yield snapshot


def usd(document: str, customer: str, cents: int) -> DocumentAmount:
    return DocumentAmount(document, customer, "USD", cents)


def test_open_invoices_as_of_a_day(books: StripeBooks) -> None:
    # 5 Nov: in_a 110.00 - 60.00 paid = 50.00; in_c not voided yet; in_f in EUR.
    assert list(books.open_invoices(ENTITY, date(2026, 11, 5))) == [
        usd("in_a", "cus_1", 5_000), usd("in_c", "cus_2", 2_000),
        DocumentAmount("in_f", "cus_3", "EUR", 990)]
    # 30 Nov: in_a paid in full, then credited 22.00 more (never below zero: the credit is
    # the customer's); in_b 55.00 - 22.00 balance - 11.00 credit note - 10.00 paid = 12.00;
    # in_c voided; in_d paid; in_e a draft.
    assert list(books.open_invoices(ENTITY, date(2026, 11, 30))) == [
        usd("in_a", "cus_1", 0), usd("in_b", "cus_1", 1_200), usd("in_d", "cus_2", 0),
        DocumentAmount("in_f", "cus_3", "EUR", 990)]


def test_customer_balances_count_credits_cash_on_account_and_refunds(books: StripeBooks) -> None:
    # cus_1: in_a 110.00 - 22.00 - 110.00 = -22.00; in_b 55.00 - 11.00 - 10.00 = 34.00;
    #        12.00 in all, in_b's open amount (the -22.00 balance paid part of it).
    # cus_2: in_d 30.00 - 30.00; 40.00 on account; 10.00 of it refunded: -30.00.
    assert list(books.customer_balances(ENTITY, "USD", date(2026, 11, 30))) == [
        CustomerAmount("cus_1", 1_200), CustomerAmount("cus_2", -3_000)]
    assert list(books.customer_balances(ENTITY, "EUR", date(2026, 11, 30))) == [
        CustomerAmount("cus_3", 990)]
    assert list(books.customer_balances(ENTITY, "USD", date(2026, 11, 5))) == [
        CustomerAmount("cus_1", 5_000), CustomerAmount("cus_2", 2_000)]


def test_payments_applied_as_the_mapping_names_them(books: StripeBooks) -> None:
    assert list(books.payments_applied(ENTITY, date(2026, 11, 30))) == [
        usd("paid_out_of_band_in_d", "cus_2", 3_000), usd("pi_1", "cus_1", 6_000),
        usd("pi_2", "cus_1", 5_000), usd("pi_4", "cus_1", 1_000)]
    assert list(books.payments_applied(ENTITY, date(2026, 11, 5))) == [
        usd("pi_1", "cus_1", 6_000)]


def test_credit_memos_with_their_contract_before_tax(books: StripeBooks) -> None:
    assert list(books.credit_memos(ENTITY, date(2026, 11, 30))) == [
        ContractDocument("sub_1", usd("cn_1", "cus_1", 1_000)),
        ContractDocument("sub_1", usd("cn_2", "cus_1", 2_000))]
    assert list(books.credit_memos(ENTITY, date(2026, 11, 15))) == [
        ContractDocument("sub_1", usd("cn_2", "cus_1", 2_000))]


def test_contract_value_is_billed_before_tax_less_credit_notes(books: StripeBooks) -> None:
    # in_a 100.00 + in_b 50.00 - cn_2 20.00 - cn_1 10.00 = 120.00
    [value] = list(books.contract_values(ENTITY))
    assert (value.contract_id, value.customer_id, value.value) == (
        "sub_1", "cus_1", Money.of("120.00", "USD"))


def test_another_entity_has_no_stripe_documents(books: StripeBooks) -> None:
    day = date(2026, 11, 30)
    assert list(books.open_invoices("le_eu", day)) == []
    assert list(books.customer_balances("le_eu", "USD", day)) == []
    assert list(books.payments_applied("le_eu", day)) == []
    assert list(books.credit_memos("le_eu", day)) == []
    assert list(books.contract_values("le_eu")) == []
