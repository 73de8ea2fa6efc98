"""What Stripe's own objects state (`statement`), which copy of an object is the newer
(`mirror.Copy`), and what `verify` compares: pure, on objects in the current shape built from
Stripe's examples and, where said, the older shape localstripe answers in."""

from __future__ import annotations

from datetime import date

import pytest

from finsync.connectors.stripe import statement
from finsync.connectors.stripe.delivery import parse
from finsync.connectors.stripe.mirror import copies
from finsync.connectors.stripe.verify import Difference, compared
from finsync.domain.errors import MappingError
from tests.stripeshapes import delivered, event, listing, shaped, webhook
from tests.stripeshapes.company import at

T = at(2026, 11, 2, 9)


def test_an_invoice_states_its_total_before_tax_balance_and_payment() -> None:
    inv = shaped("invoice", id="in_1", customer={"id": "cus_1", "object": "customer"},
                 currency="jpy", status="paid", total=15_000, total_excluding_tax=13_637,
                 starting_balance=-20_000, amount_paid=0, created=T,
                 status_transitions={"finalized_at": T, "paid_at": T + 60, "voided_at": None,
                                     "marked_uncollectible_at": None})
    facts = statement.invoice(inv)
    # ¥15,000 (zero-decimal: 15,000 minor units), of which ¥1,363 tax; the customer's credit
    # of ¥20,000 pays it all (applied up to the total); the mapping's payment name.
    assert (facts.customer, facts.currency, facts.total, facts.before_tax) == (
        "cus_1", "JPY", 15_000, 13_637)
    assert (facts.balance_applied, facts.paid, facts.payment_id) == (
        15_000, 0, "paid_out_of_band_in_1")
    assert facts.issued == date(2026, 11, 2) and facts.counts(date(2026, 11, 2))
    assert not facts.counts(date(2026, 11, 1))


def test_a_draft_is_not_issued_and_a_voided_invoice_counts_until_its_void() -> None:
    draft = shaped("invoice", id="in_d", customer="cus_1", status="draft", created=T)
    assert statement.invoice(draft).issued is None
    void = shaped("invoice", id="in_v", customer="cus_1", status="void", created=T,
                  status_transitions={"finalized_at": T, "paid_at": None,
                                      "voided_at": T + 3 * 86_400,
                                      "marked_uncollectible_at": None})
    facts = statement.invoice(void)
    assert facts.counts(date(2026, 11, 4)) and not facts.counts(date(2026, 11, 5))


def test_an_older_shape_invoice_is_paid_by_its_payment_intent() -> None:
    # localstripe (API 2017-08-15): `payment_intent` on the invoice, `tax` instead of taxes
    inv = {"id": "in_old", "object": "invoice", "customer": "cus_1", "currency": "kwd",
           "status": "paid", "total": 12_340, "tax": 1_120, "amount_paid": 12_340,
           "total_tax_amounts": [{"amount": 1_120, "inclusive": False}],
           "payment_intent": "pi_old", "created": T,
           "status_transitions": {"finalized_at": None, "paid_at": T}}
    facts = statement.invoice(inv)
    assert (facts.payment_id, facts.total, facts.before_tax, facts.paid) == (
        "pi_old", 12_340, 11_220, 12_340)  # KWD: three decimals, 12.340


def test_an_amount_stripe_never_sends_is_refused() -> None:
    with pytest.raises(MappingError, match="integer"):
        statement.invoice(shaped("invoice", id="in_f", customer="cus_1", total=10.5))


def test_payments_refunds_and_credit_notes_state_what_moved_money() -> None:
    paid = shaped("invoice_payment", id="inpay_1", invoice="in_1", currency="usd",
                  amount_paid=6_000, status="paid", created=T,
                  payment={"type": "charge", "charge": "ch_1"},
                  status_transitions={"canceled_at": None, "paid_at": T})
    assert statement.invoice_payment(paid) == statement.PaymentPart(
        "ch_1", "in_1", "USD", 6_000, date(2026, 11, 2))
    assert statement.invoice_payment(dict(paid, status="open")) is None
    pending = shaped("refund", id="re_1", status="pending", charge="ch_1")
    assert statement.refund(pending) is None
    refund = statement.refund(dict(pending, status="succeeded", payment_intent="pi_1"))
    assert refund is not None and (refund.payment_id, refund.charge) == ("pi_1", "ch_1")
    note = shaped("credit_note", id="cn_1", invoice="in_1", customer="cus_1", status="void",
                  total=1_100, total_excluding_tax=None, total_taxes=[
                      {"amount": 100, "tax_behavior": "exclusive", "taxable_amount": 1_000,
                       "taxability_reason": "standard_rated", "type": "tax_rate_details",
                       "tax_rate_details": {"tax_rate": "txr_1"}}],
                  created=T, voided_at=T + 86_400)
    facts = statement.credit_note(note)
    assert (facts.total, facts.before_tax, facts.voided) == (1_100, 1_000, date(2026, 11, 3))


def test_the_copy_further_on_wins_within_a_second_and_a_fetched_one_over_a_snapshot() -> None:
    draft = shaped("invoice", id="in_1", customer="cus_1", status="draft", created=T)
    opened = dict(draft, status="open")
    [snapshot] = copies(parse(webhook(event("invoice.finalized", opened, evt="evt_1",
                                            created=T))))
    [old, fetched, payment] = copies(parse(delivered(
        event("invoice.created", draft, evt="evt_2", created=T), current=draft,
        related={"payments": listing([shaped("invoice_payment", id="inpay_1",
                                             invoice="in_1")])})))
    assert snapshot.key() > fetched.key() > old.key()  # open > draft, whatever was fetched
    assert (payment.object_type, payment.fetched) == ("invoice_payment", True)
    thin = {"id": "in_1", "object": "invoice"}
    partial = dict(opened, lines={**listing([]), "has_more": True})
    assert copies(parse(webhook(event("invoice.updated", thin, evt="evt_3")))) == []
    assert copies(parse(webhook(event("invoice.updated", partial, evt="evt_4")))) == []


def test_verify_compares_the_fields_the_books_read() -> None:
    mine = shaped("invoice", id="in_1", customer="cus_1", status="open", amount_paid=0,
                  description="ignored")
    theirs = dict(mine, status="paid", amount_paid=1_000, description="changed",
                  customer={"id": "cus_1", "object": "customer"})
    assert compared(mine, theirs) == [
        Difference("invoice", "in_1", "status", "open", "paid"),
        Difference("invoice", "in_1", "amount_paid", 0, 1_000)]
    assert statement.facts({"object": "product", "id": "prod_1"}) == {}
