"""Stripe payments, refunds, declined attempts and customer balance to canonical documents.

Fixtures are in the current API shape (`tests/stripeshapes`), delivered by the poller with
what it fetched beside the event; `old_*` payloads are the older shape localstripe sends
(2017-08-15), written by hand."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest

from finsync.connectors.stripe.client import (
    CREDIT_NOTES_OF_INTENT,
    INVOICE_PAYMENTS_OF_INTENT,
    INVOICE_PAYMENTS_OF_INVOICE,
)
from finsync.connectors.stripe.delivery import Fetch
from finsync.connectors.stripe.mapping import fetch_plan
from finsync.domain import codec
from finsync.domain.aggregate import AggregateRef
from finsync.domain.errors import MappingError
from finsync.domain.events import (
    CreditMemoIssued,
    InvoiceIssued,
    PaymentApplied,
    PaymentDeclined,
    RefundIssued,
)
from finsync.domain.money import Money
from finsync.domain.payment import PaymentApplication
from tests.stripeshapes import DAY, T0, delivered, event, webhook
from tests.stripeshapes.payments import (
    OLD_API_VERSION,
    charge,
    credit_note,
    invoice,
    invoice_payment,
    line,
    links,
    notes,
    old_intent,
    old_invoice,
    payment_intent,
    refund,
)
from tests.unit.stripe.mapped import mapped, only

USD = "USD"






def usd(text: str) -> Money:
    return Money.of(text, USD)


INV = invoice("in_1", [line("il_1", 10_000)])  # 100.00 USD, paid in full


# -- a PaymentIntent paying an invoice is one payment applied to it ---------------------------

def test_an_intent_paying_an_invoice_is_one_payment_applied_to_it() -> None:
    evt = event("payment_intent.succeeded", payment_intent("pi_1", 10_000), evt="evt_pi",
                created=T0 + DAY)
    assert mapped(webhook(evt)) == []  # since basil the event does not say what it paid
    assert fetch_plan(evt) == (Fetch("invoice_payments", INVOICE_PAYMENTS_OF_INTENT, "pi_1"),)
    fetched = links(invoice_payment(INV, 10_000, intent="pi_1"))  # expand[]=data.invoice
    (draft,) = mapped(delivered(evt, related={"invoice_payments": fetched}))
    assert isinstance(draft.event, PaymentApplied)
    payment = draft.event.payment
    assert payment.id == "pi_1" and payment.amount == usd("100.00")
    assert payment.applications == (PaymentApplication("in_1", usd("100.00")),)
    assert payment.received_on == date(2026, 11, 28)  # the day Stripe said it succeeded
    assert draft.aggregate == AggregateRef("payment", "pi_1", 1)
    assert draft.correlation_id == "stripe:sub_1"  # the thread of the invoice it paid


def test_the_paid_invoice_event_carries_no_payment_of_an_intent() -> None:
    evt = event("invoice.paid", INV, evt="evt_paid")
    assert fetch_plan(evt) == (Fetch("invoice_payments", INVOICE_PAYMENTS_OF_INVOICE, "in_1"),)
    raw = delivered(evt, related={"invoice_payments": links(
        invoice_payment("in_1", 10_000, intent="pi_1"))})
    assert isinstance(only(raw, InvoiceIssued), InvoiceIssued)  # pi_1 comes with its own event


def test_an_intent_on_account_stays_on_account() -> None:
    evt = event("payment_intent.succeeded", payment_intent("pi_9", 5_000, currency="eur"),
                evt="evt_pi9")
    payment = only(delivered(evt, related={"invoice_payments": links()}),
                   PaymentApplied).payment
    assert payment.applications == () and payment.amount == Money.of("50.00", "EUR")


def test_an_intent_paying_two_invoices_applies_to_each() -> None:
    # 30.00 + 45.50 = 75.50 received
    paid = links(invoice_payment("in_1", 3_000, intent="pi_2"),
                 invoice_payment("in_2", 4_550, intent="pi_2"),
                 invoice_payment("in_3", 999, intent="pi_2", status="canceled"))
    evt = event("payment_intent.succeeded", payment_intent("pi_2", 7_550), evt="evt_pi2")
    payment = only(delivered(evt, related={"invoice_payments": paid}), PaymentApplied).payment
    assert payment.applications == (PaymentApplication("in_1", usd("30.00")),
                                    PaymentApplication("in_2", usd("45.50")))


def test_an_invoice_payment_not_marked_paid_yet_applies_what_it_asked_within_the_intent(
) -> None:
    # requested 80.00, but the intent received 60.00: 60.00 applied, nothing unapplied
    pending = links(invoice_payment("in_1", 8_000, intent="pi_3", status="open"))
    evt = event("payment_intent.succeeded", payment_intent("pi_3", 8_000, received=6_000),
                evt="evt_pi3")
    payment = only(delivered(evt, related={"invoice_payments": pending}),
                   PaymentApplied).payment
    assert payment.amount == usd("60.00")
    assert payment.applications == (PaymentApplication("in_1", usd("60.00")),)


def test_invoice_payment_paid_is_acknowledged_its_payment_comes_from_its_own_event() -> None:
    link = invoice_payment("in_1", 10_000, intent="pi_1")
    assert mapped(webhook(event("invoice_payment.paid", link, evt="evt_ip"))) == []


# -- out-of-band payments ---------------------------------------------------------------------

def test_a_payment_record_on_the_invoice_is_a_payment_of_the_paid_invoice_event() -> None:
    evt = event("invoice.paid", INV, evt="evt_paid")
    raw = delivered(evt, related={"invoice_payments": links(
        invoice_payment("in_1", 10_000, record="prec_1"))})
    issued, paid = mapped(raw)
    assert isinstance(issued.event, InvoiceIssued) and isinstance(paid.event, PaymentApplied)
    assert paid.event.payment.id == "prec_1"
    assert paid.event.payment.applications == (PaymentApplication("in_1", usd("100.00")),)
    assert paid.source_event_id == "evt_paid/payment:prec_1"
    assert paid.event.payment.received_on == date(2026, 11, 27)  # paid_at


def test_marked_paid_out_of_band_after_a_partial_intent_is_the_rest() -> None:
    # 100.00 due: pi_1 paid 40.00, the rest (60.00) was marked paid outside Stripe
    inv = dict(INV, paid_out_of_band=True, amount_paid=4_000)
    evt = event("invoice.paid", inv, evt="evt_oob")
    raw = delivered(evt, related={"invoice_payments": links(
        invoice_payment("in_1", 4_000, intent="pi_1"))})
    _issued, paid = mapped(raw)
    assert paid.event.document.id == "paid_out_of_band_in_1"
    assert isinstance(paid.event, PaymentApplied)
    assert paid.event.payment.applications == (PaymentApplication("in_1", usd("60.00")),)


def test_a_charge_without_an_intent_is_a_payment_of_the_paid_invoice_event() -> None:
    evt = event("invoice.payment_succeeded", INV, evt="evt_ch")
    raw = delivered(evt, related={"invoice_payments": links(
        invoice_payment("in_1", 10_000, charge="ch_7"))})
    assert [d.event.document.id for d in mapped(raw)] == ["in_1", "ch_7"]


# -- partial payments and the customer's balance ----------------------------------------------

def test_partial_payments_plus_the_customer_balance_settle_the_invoice() -> None:
    # 100.00 invoice; the customer held 30.00 of credit (balance -3000 -> 0): 70.00 due,
    # paid 40.00 by pi_a and 30.00 by pi_b.
    inv = invoice("in_5", [line("il_5", 10_000)], starting_balance=-3_000, ending_balance=0)
    assert (inv["amount_due"], inv["amount_paid"]) == (7_000, 7_000)
    issued = only(webhook(event("invoice.finalized", dict(inv, status="open", amount_paid=0),
                                evt="evt_fin")), InvoiceIssued).invoice
    assert issued.total == usd("100.00") and issued.customer_credit_applied == usd("30.00")
    paid = []
    for pi, amount in (("pi_a", 4_000), ("pi_b", 3_000)):
        evt = event("payment_intent.succeeded", payment_intent(pi, amount), evt=f"evt_{pi}")
        raw = delivered(evt, related={"invoice_payments": links(
            invoice_payment(inv, amount, intent=pi))})
        paid.append(only(raw, PaymentApplied).payment.applications)
    assert paid == [(PaymentApplication("in_5", usd("40.00")),),
                    (PaymentApplication("in_5", usd("30.00")),)]
    # 30.00 credit + 40.00 + 30.00 = 100.00: nothing left open


def test_an_invoice_the_balance_did_not_touch_has_no_credit_applied() -> None:
    inv = only(webhook(event("invoice.finalized", dict(INV, status="open"), evt="evt_f")),
               InvoiceIssued).invoice
    assert inv.customer_credit_applied is None


def test_more_credit_than_the_invoice_leaves_the_rest_on_the_balance() -> None:
    # 100.00 invoice, 250.00 of credit: 100.00 applied, -150.00 left on the balance
    inv = invoice("in_6", [line("il_6", 10_000)], starting_balance=-25_000,
                  ending_balance=-15_000)
    issued = only(webhook(event("invoice.finalized", inv, evt="evt_f6")), InvoiceIssued)
    assert issued.invoice.customer_credit_applied == usd("100.00")


def test_a_debit_balance_pulled_into_an_invoice_is_refused_not_misbooked() -> None:
    # the customer owed 0.40 from an invoice below Stripe's minimum charge: 100.40 due
    inv = invoice("in_7", [line("il_7", 10_000)], starting_balance=40, ending_balance=0)
    with pytest.raises(MappingError) as caught:
        mapped(webhook(event("invoice.finalized", inv, evt="evt_f7")))
    assert caught.value.code == "customer_debit_balance"


# -- refunds ----------------------------------------------------------------------------------

def test_a_refund_re_opens_the_invoice_its_payment_paid() -> None:
    evt = event("refund.created", refund("re_1", 2_500), evt="evt_re")
    assert fetch_plan(evt) == (Fetch("current", "refund", "re_1"),
                               Fetch("invoice_payments", INVOICE_PAYMENTS_OF_INTENT, "pi_1"),
                               Fetch("credit_notes", CREDIT_NOTES_OF_INTENT, "pi_1"))
    current = refund("re_1", 2_500, charge=charge("ch_1", 10_000))
    raw = delivered(evt, current=current, related={
        "invoice_payments": links(invoice_payment(INV, 10_000, intent="pi_1")),
        "credit_notes": notes()})
    (draft,) = mapped(raw)
    assert isinstance(draft.event, RefundIssued)
    made = draft.event.refund
    assert (made.payment_id, made.customer_id, made.amount) == ("pi_1", "cus_1", usd("25.00"))
    assert (made.reopens_invoice, made.from_credit) == ("in_1", usd("0"))
    assert draft.correlation_id == "stripe:sub_1"


def test_a_credit_notes_refund_pays_out_the_credit_the_note_left() -> None:
    # a 25.00 credit note after payment, 20.00 of it refunded (re_2), 5.00 to the balance
    evt = event("refund.created", refund("re_2", 2_000), evt="evt_re2")
    raw = delivered(evt, current=refund("re_2", 2_000, charge=charge("ch_1", 10_000)),
                    related={"invoice_payments": links(
                        invoice_payment("in_1", 10_000, intent="pi_1")),
                        "credit_notes": notes(credit_note("cn_1", "in_1", 2_500,
                                                          refunded={"re_2": 2_000}))})
    made = only(raw, RefundIssued).refund
    assert (made.reopens_invoice, made.from_credit) == ("in_1", usd("20.00"))


def test_a_refund_of_money_on_account_pays_out_the_customers_credit() -> None:
    evt = event("refund.created", refund("re_9", 1_000, intent="pi_9"), evt="evt_re9")
    raw = delivered(evt, current=refund("re_9", 1_000, intent="pi_9",
                                        charge=charge("ch_9", 5_000, intent="pi_9")),
                    related={"invoice_payments": links(), "credit_notes": notes()})
    made = only(raw, RefundIssued).refund
    assert (made.payment_id, made.reopens_invoice, made.from_credit) == ("pi_9", None, None)


def test_charge_refunded_links_each_refund_to_the_invoice() -> None:
    ch = charge("ch_1", 10_000, refunds=[refund("re_1", 2_500),
                                         dict(refund("re_3", 100), status="pending")])
    evt = event("charge.refunded", ch, evt="evt_chr")
    raw = delivered(evt, related={"invoice_payments": links(
        invoice_payment("in_1", 10_000, intent="pi_1")), "credit_notes": notes()})
    made = only(raw, RefundIssued).refund
    assert (made.id, made.reopens_invoice) == ("re_1", "in_1")


# -- declined attempts ------------------------------------------------------------------------

def test_a_declined_intent_is_a_declined_attempt_on_its_invoice() -> None:
    intent = payment_intent("pi_1", 10_000, status="failed", decline_code="insufficient_funds",
                            failed_charge="ch_fail_1")
    evt = event("payment_intent.payment_failed", intent, evt="evt_fail", created=T0 + DAY)
    assert mapped(webhook(evt)) == []
    (draft,) = mapped(delivered(evt, related={"invoice_payments": links(
        invoice_payment(INV, 10_000, intent="pi_1", status="open"))}))
    assert isinstance(draft.event, PaymentDeclined)
    attempt = draft.event.attempt
    assert (attempt.id, attempt.payment_id, attempt.decline_code, attempt.invoice_ids) \
        == ("ch_fail_1", "pi_1", "insufficient_funds", ("in_1",))
    assert attempt.amount == usd("100.00") and attempt.attempted_on == date(2026, 11, 28)
    assert draft.aggregate == AggregateRef("payment_attempt", "ch_fail_1", 1)
    assert draft.correlation_id == "stripe:sub_1"
    assert "declined" not in json.dumps(codec.encode_event(draft.event))  # no message


# -- the older shape localstripe sends --------------------------------------------------------

def old(kind: str, obj: dict[str, object], evt: str) -> bytes:
    return webhook(event(kind, obj, evt=evt, api_version=OLD_API_VERSION))


def test_old_shape_paid_invoice_carries_only_the_invoice() -> None:
    evt = event("invoice.payment_succeeded", old_invoice("in_1", 3_750), evt="evt_old",
                api_version=OLD_API_VERSION)
    assert fetch_plan(evt) == ()  # the old shape names its payment itself
    assert [type(d.event) for d in mapped(webhook(evt))] == [InvoiceIssued]


def test_old_shape_intent_of_an_invoice_is_one_payment_applied_to_it() -> None:
    evt = event("payment_intent.succeeded", old_intent("pi_1", 3_750), evt="evt_oldpi",
                api_version=OLD_API_VERSION)
    assert fetch_plan(evt) == ()
    (draft,) = mapped(webhook(evt))
    assert isinstance(draft.event, PaymentApplied)
    assert draft.event.payment.applications == (PaymentApplication("in_1", usd("37.50")),)
    assert draft.correlation_id == "stripe:in_1"  # an old intent names only its invoice


def test_old_shape_intent_without_invoice_is_on_account() -> None:
    payment = only(old("payment_intent.succeeded", old_intent("pi_8", 900, invoice=None),
                       "evt_old8"), PaymentApplied).payment
    assert payment.applications == ()


def test_old_shape_invoice_paid_by_a_charge_alone_carries_that_charge() -> None:
    drafts = mapped(old("invoice.payment_succeeded", old_invoice("in_2", 500, intent=None,
                                                                 charge="ch_2"), "evt_old2"))
    assert [d.event.document.id for d in drafts] == ["in_2", "ch_2"]


def test_old_shape_declined_intent_names_its_invoice() -> None:
    attempt = only(old("payment_intent.payment_failed", old_intent("pi_4", 900,
                                                                   status="failed"),
                       "evt_old4"), PaymentDeclined).attempt
    assert (attempt.id, attempt.decline_code, attempt.invoice_ids) \
        == ("ch_pi_4_failed", "card_declined", ("in_1",))


def test_old_shape_refund_re_opens_the_invoice_its_charge_paid() -> None:
    old_refund = {"id": "re_5", "object": "refund", "amount": 500, "currency": "usd",
                  "charge": "ch_1", "payment_intent": "pi_1", "created": T0,
                  "status": "succeeded"}
    evt = event("refund.created", old_refund, evt="evt_old5", api_version=OLD_API_VERSION)
    assert fetch_plan(evt) == (Fetch("current", "refund", "re_5"),)
    expanded = dict(old_refund, charge={"id": "ch_1", "object": "charge", "customer": "cus_1",
                                        "payment_intent": "pi_1", "invoice": "in_1",
                                        "amount": 3_750, "currency": "usd"})
    made = only(delivered(evt, current=expanded), RefundIssued).refund
    assert (made.reopens_invoice, made.from_credit, made.amount) \
        == ("in_1", usd("0"), Money.of(Decimal("5.00"), USD))


def test_a_credit_note_after_payment_leaves_its_amount_as_the_customers_credit() -> None:
    # 30.00 credited after in_1 was paid: nothing set against the invoice (pre-payment 0)
    note = credit_note("cn_1", "in_1", 3_000)
    credited = {"invoice": invoice("in_1", [line("il_in_1", 10_000)])}  # fetched beside it
    memo = only(delivered(event("credit_note.created", note, evt="evt_cn"), related=credited),
                CreditMemoIssued).credit_memo
    assert (memo.total, memo.applied_to_invoice) == (usd("30.00"), usd("0"))
    before = only(delivered(event("credit_note.created", dict(note, pre_payment_amount=1_000,
                                                              post_payment_amount=2_000),
                                  evt="evt_cn_pre"), related=credited),
                  CreditMemoIssued).credit_memo
    assert before.applied_to_invoice == usd("10.00")
