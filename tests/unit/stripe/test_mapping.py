"""Stripe events to canonical draft envelopes. Payloads are in the current API shape unless a
test says it uses the older shape localstripe answers in."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from finsync.domain.aggregate import AggregateRef
from finsync.domain.contract import ChangeOp, ContractChange
from finsync.domain.errors import MappingError
from finsync.domain.events import (
    ContractAmended,
    ContractCancelled,
    ContractCreated,
    CreditMemoIssued,
    CustomerUpserted,
    InvoiceIssued,
    PaymentApplied,
    RefundIssued,
)
from tests.unit.stripe.mapped import event_of, mapped
from tests.unit.stripe.payloads import (
    DAY,
    T0,
    body,
    delivered,
    event,
    invoice,
    line,
    price,
    subscription,
)


def test_paid_invoice_with_proration_discount_and_tax_maps_to_the_invoice() -> None:
    # current shape: pricing.price_details, parent.subscription_item_details.proration, taxes.
    # The invoice's payment is a PaymentIntent (`payments`, expanded here): its own event
    # (payment_intent.succeeded) carries it, so the invoice event carries only the invoice
    # (tests/unit/stripe/test_payments.py).
    lines = [line("il_seats", 10_000, quantity=8, discount=1_000, tax=900),
             line("il_prorate", 2_500, proration=True, start=T0 + 15 * DAY, tax=250)]
    envs = mapped(body(event("invoice.paid", invoice(lines, 12_650))))
    assert [type(e.event) for e in envs] == [InvoiceIssued]
    assert [e.source_event_id for e in envs] == ["evt_1"]
    assert [e.occurred_at for e in envs] == [datetime.fromtimestamp(T0, UTC)]
    inv = event_of(envs[0], InvoiceIssued).invoice
    assert inv.contract_id == "sub_1" and inv.legal_entity == "le_us"
    assert [(str(x.amount.amount), str(x.tax_amount.amount), x.proration) for x in inv.lines] \
        == [("90.00", "9.00", False), ("25.00", "2.50", True)]
    assert (str(inv.subtotal.amount), str(inv.tax_total.amount), str(inv.total.amount)) \
        == ("115.00", "11.50", "126.50")
    assert inv.lines[1].service_start == date(2026, 12, 12)
    assert inv.lines[0].product_id == "prod_seats" and inv.refs["stripe"] == "in_1"
    assert envs[0].aggregate == AggregateRef("invoice", "in_1", 1)
    assert [e.correlation_id for e in envs] == ["stripe:sub_1"]


def test_tax_included_in_the_price_is_taken_out_of_the_line_amount() -> None:
    lines = [line("il_1", 12_000, tax=2_000, tax_behavior="inclusive")]
    inv = event_of(mapped(body(event("invoice.finalized",
                                     invoice(lines, 12_000, status="open"))))[0],
                   InvoiceIssued).invoice
    assert (inv.lines[0].amount.amount, inv.lines[0].tax_amount.amount, inv.total.amount) \
        == (Decimal("100.00"), Decimal("20.00"), Decimal("120.00"))


def test_lines_that_do_not_reach_stripes_total_are_refused() -> None:
    with pytest.raises(MappingError) as caught:
        mapped(body(event("invoice.finalized", invoice([line("il_1", 1_000)], 1_200,
                                                       status="open"))))
    assert caught.value.code == "totals_mismatch"


def test_zero_decimal_and_three_decimal_currencies_use_their_exponent() -> None:
    for currency, minor, expected in (("jpy", 1200, "1200"), ("kwd", 1200, "1.200")):
        inv_obj = invoice([dict(line("il_1", minor), currency=currency)], minor, currency=currency)
        inv = event_of(mapped(body(event("invoice.finalized", inv_obj)))[0],
                       InvoiceIssued).invoice
        assert inv.currency == currency.upper() and str(inv.total.amount) == expected


def test_a_draft_invoice_has_no_financial_effect_yet() -> None:
    draft = invoice([line("il_1", 1_000)], 1_000, status="draft")
    assert mapped(body(event("invoice.created", draft))) == []


def test_a_partial_invoice_waits_for_its_fetched_copy() -> None:
    partial = invoice([line("il_1", 1_000)], 3_000, has_more=True)
    evt = event("invoice.finalized", partial)
    assert mapped(body(evt)) == []  # webhook copy: the poller fetches and sends it whole
    whole = invoice([line("il_1", 1_000), line("il_2", 2_000)], 3_000)
    inv = event_of(mapped(delivered(evt, current=whole))[0], InvoiceIssued).invoice
    assert len(inv.lines) == 2 and inv.total.amount == Decimal("30.00")


def test_subscription_events_are_mapped_only_from_sequenced_deliveries() -> None:
    sub = subscription([("si_1", price("price_seats", "prod_seats", 1250), 500)])
    created = event("customer.subscription.created", sub)
    assert mapped(body(created)) == []
    (env,) = mapped(delivered(created, version=1))
    contract = event_of(env, ContractCreated).contract
    assert env.aggregate == AggregateRef("subscription_contract", "sub_1", 1)
    assert contract.lines[0].unit_price.amount == Decimal("12.50")
    assert contract.lines[0].quantity == 500 and contract.billing_frequency == "monthly"
    assert contract.end_date == date(2026, 12, 27)


def test_an_update_with_two_items_is_an_amendment_naming_what_changed() -> None:
    # current shape: multi-item subscription, Prices, previous_attributes
    sub = subscription([("si_1", price("price_seats", "prod_seats", 1250), 800),
                        ("si_2", price("price_analytics", "prod_analytics", 40_000), 1)])
    updated = event("customer.subscription.updated", sub, evt="evt_2", created=T0 + 45 * DAY,
                    previous={"items": {"data": [{"id": "si_1", "quantity": 500}]}})
    (env,) = mapped(delivered(updated, version=2))
    amendment = event_of(env, ContractAmended).amendment
    assert amendment.version == 2
    assert env.aggregate == AggregateRef("subscription_contract", "sub_1", 2)
    assert amendment.changes == (ContractChange(ChangeOp.ATTRIBUTE_CHANGED,
                                                before='{"data":[{"id":"si_1","quantity":500}]}',
                                                attribute="items"),)
    assert [line.product_id for line in amendment.contract.lines] \
        == ["prod_seats", "prod_analytics"]
    assert amendment.effective_date == amendment.contract.end_date  # clamped into the term


def test_the_first_event_seen_of_a_subscription_is_its_creation() -> None:
    sub = subscription([("si_1", price("price_seats", "prod_seats", 1250), 5)])
    (env,) = mapped(delivered(event("customer.subscription.updated", sub), version=1))
    assert type(env.event) is ContractCreated


def test_a_deleted_subscription_is_a_cancellation() -> None:
    sub = subscription([("si_1", price("price_seats", "prod_seats", 1250), 5)],
                       status="canceled", ended_at=T0 + 10 * DAY)
    (env,) = mapped(delivered(event("customer.subscription.deleted", sub, evt="evt_9"),
                              version=3))
    amendment = event_of(env, ContractCancelled).amendment
    assert amendment.changes == (ContractChange(ChangeOp.CANCELLED),)
    assert env.aggregate == AggregateRef("subscription_contract", "sub_1", 3)
    assert amendment.contract.end_date == date(2026, 12, 7)


def test_every_previous_attribute_is_one_change_in_key_order() -> None:
    sub = subscription([("si_1", price("price_seats", "prod_seats", 1250), 5)])
    updated = event("customer.subscription.updated", sub, evt="evt_3",
                    previous={"status": "trialing", "metadata": {}, "cancel_at": 1})
    (env,) = mapped(delivered(updated, version=2))
    # an empty previous value (`{}`) has no `before`
    assert event_of(env, ContractAmended).amendment.changes == (
        ContractChange(ChangeOp.ATTRIBUTE_CHANGED, before="1", attribute="cancel_at"),
        ContractChange(ChangeOp.ATTRIBUTE_CHANGED, attribute="metadata"),
        ContractChange(ChangeOp.ATTRIBUTE_CHANGED, before='"trialing"', attribute="status"))


def test_an_update_that_names_no_attribute_replaces_the_state() -> None:
    sub = subscription([("si_1", price("price_seats", "prod_seats", 1250), 5)])
    (env,) = mapped(delivered(event("customer.subscription.updated", sub, evt="evt_3"),
                              version=2))
    assert event_of(env, ContractAmended).amendment.changes \
        == (ContractChange(ChangeOp.STATE_REPLACED),)
    assert env.source_event_id == "evt_3"


@pytest.mark.parametrize("version", [0, -1])
def test_a_sequenced_event_needs_a_positive_version(version: int) -> None:
    sub = subscription([("si_1", price("price_seats", "prod_seats", 1250), 5)])
    with pytest.raises(MappingError) as caught:
        mapped(delivered(event("customer.subscription.updated", sub), version=version))
    assert caught.value.code == "invalid_event"

def test_credit_note_maps_to_credit_memo_with_tax_and_discount() -> None:
    note = {"id": "cn_1", "object": "credit_note", "number": "ACME-0001-CN-01",
            "invoice": "in_1", "customer": "cus_1", "currency": "usd", "created": T0,
            "reason": "order_change", "total": 1_980, "lines": {
                "object": "list", "has_more": False, "data": [
                    {"id": "cnli_1", "object": "credit_note_line_item", "amount": 2_000,
                     "quantity": 1, "type": "invoice_line_item", "invoice_line_item": "il_1",
                     "description": "SLA credit",
                     "discount_amounts": [{"amount": 200, "discount": "di_1"}],
                     "taxes": [{"amount": 180, "tax_behavior": "exclusive",
                                "type": "tax_rate_details", "taxable_amount": 1_800}]}]}}
    evt = event("credit_note.created", note)
    assert mapped(body(evt)) == []  # the poller's copy carries the invoice it credits
    credited = invoice([line("il_1", 10_000)], 10_000)
    (env,) = mapped(body({"object": "finsync.stripe_delivery", "event": evt, "current": None,
                          "version": None, "related": {"invoice": credited}}))
    memo = event_of(env, CreditMemoIssued).credit_memo
    assert memo.invoice_id == "in_1" and memo.reason == "order_change"
    assert (memo.subtotal.amount, memo.tax_total.amount) == (Decimal("18.00"), Decimal("1.80"))
    assert memo.lines[0].product_id == "prod_seats"  # the credited line's, not stripe_unpriced


def _refund(charge: Any) -> dict[str, Any]:
    return {"id": "re_1", "object": "refund", "amount": 500, "currency": "usd",
            "charge": charge, "payment_intent": "pi_1", "created": T0, "status": "succeeded",
            "reason": "requested_by_customer"}


# What the poller fetches beside a refund of pi_1: nothing links it to an invoice here.
_UNLINKED = {"invoice_payments": {"object": "list", "data": [], "has_more": False},
             "credit_notes": {"object": "list", "data": [], "has_more": False}}


def test_a_refund_needs_its_charge_for_the_customer() -> None:
    evt = event("refund.created", _refund("ch_1"))
    assert mapped(body(evt)) == []  # fetched with expand[]=charge by the poller
    current = _refund({"id": "ch_1", "object": "charge", "customer": "cus_1"})
    (env,) = mapped(delivered(evt, current=current, related=_UNLINKED))
    refund = event_of(env, RefundIssued).refund
    assert (refund.payment_id, refund.customer_id, refund.amount.amount) \
        == ("pi_1", "cus_1", Decimal("5.00"))


def test_charge_refunded_maps_every_succeeded_refund() -> None:
    charge = {"id": "ch_1", "object": "charge", "customer": "cus_1", "currency": "usd",
              "payment_intent": "pi_1", "refunds": {"object": "list", "has_more": False,
                                                    "data": [_refund("ch_1"),
                                                             dict(_refund("ch_1"), id="re_2",
                                                                  status="pending")]}}
    envs = mapped(delivered(event("charge.refunded", charge), related=_UNLINKED))
    assert [(type(e.event), e.claimed.id) for e in envs] == [(RefundIssued, "re_1")]


def test_a_second_refund_of_one_charge_has_its_own_source_event_id() -> None:
    charge = {"id": "ch_1", "object": "charge", "customer": "cus_1", "currency": "usd",
              "refunds": {"object": "list", "has_more": False,
                          "data": [_refund("ch_1"), dict(_refund("ch_1"), id="re_3", amount=200)]}}
    envs = mapped(delivered(event("charge.refunded", charge), related=_UNLINKED))
    assert [e.source_event_id for e in envs] == ["evt_1", "evt_1/refund:re_3"]
    assert [e.aggregate for e in envs] == [AggregateRef("refund", "re_1", 1),
                                           AggregateRef("refund", "re_3", 1)]
    assert event_of(envs[1], RefundIssued).refund.amount.amount == Decimal("2.00")

def test_payment_intent_without_invoice_is_money_on_account() -> None:
    intent = {"id": "pi_9", "object": "payment_intent", "amount": 5_000,
              "amount_received": 5_000, "currency": "eur", "customer": "cus_1",
              "created": T0, "status": "succeeded"}
    evt = event("payment_intent.succeeded", intent)
    assert mapped(body(evt)) == []  # the poller fetches its invoice payments (none here)
    payment = event_of(mapped(delivered(evt, related=_UNLINKED))[0], PaymentApplied).payment
    assert payment.applications == () and str(payment.amount.amount) == "50.00"


def test_old_shape_payment_intent_of_an_invoice_is_the_payment_applied_to_it() -> None:
    # localstripe's older shape: PaymentIntent.invoice
    intent = {"id": "pi_1", "object": "payment_intent", "amount": 3_750, "currency": "usd",
              "customer": "cus_1", "created": T0, "invoice": "in_1", "status": "succeeded"}
    old = dict(event("payment_intent.succeeded", intent), api_version="2017-08-15")
    (env,) = mapped(body(old))
    payment = event_of(env, PaymentApplied).payment
    assert [(a.invoice_id, str(a.amount.amount)) for a in payment.applications] \
        == [("in_1", "37.50")]


def test_old_shape_invoice_with_plans_and_tax_amounts_maps() -> None:
    # localstripe's shape: line.plan with amount in minor units, line.proration,
    # tax_amounts with `inclusive`, invoice.subscription and invoice.charge
    plan = {"id": "plan_seat", "object": "plan", "amount": 1250, "currency": "usd",
            "interval": "month", "interval_count": 1, "product": "prod_seats"}
    old_line = {"id": "il_1", "object": "line_item", "amount": 3_750, "currency": "usd",
                "quantity": 3, "plan": plan, "proration": False,
                "period": {"start": T0, "end": T0 + 30 * DAY},
                "tax_amounts": [{"amount": 375, "inclusive": False, "tax_rate": "txr_1"}]}
    inv = {"id": "in_1", "object": "invoice", "customer": "cus_1", "currency": "usd",
           "status": "paid", "created": T0, "subscription": "sub_1", "total": 4_125,
           "amount_paid": 4_125, "charge": {"id": "ch_1", "object": "charge"},
           "payment_intent": None, "status_transitions": {"finalized_at": None},
           "lines": {"object": "list", "has_more": False, "data": [old_line]}}
    evt = dict(event("invoice.payment_succeeded", inv), api_version="2017-08-15")
    assert mapped(body(evt)) == []  # the poller's copy carries the tax rate it names
    # localstripe's rate names no country: the tax stays whole, without a breakdown
    rate = {"id": "txr_1", "object": "tax_rate", "display_name": "Tax", "inclusive": False,
            "percentage": 10.0, "active": True, "jurisdiction": None, "metadata": {}}
    envs = mapped(delivered(evt, related={"tax_rate:txr_1": rate}))
    invoice_doc = event_of(envs[0], InvoiceIssued).invoice
    assert invoice_doc.contract_id == "sub_1" and invoice_doc.number == "in_1"
    assert invoice_doc.tax_total.amount == Decimal("3.75")
    assert invoice_doc.lines[0].taxes == ()
    # its charge has no PaymentIntent: no other event carries that payment
    assert event_of(envs[1], PaymentApplied).payment.id == "ch_1"


def test_events_without_financial_effect_are_acknowledged() -> None:
    for kind in ("product.created", "plan.created", "customer.deleted", "charge.succeeded",
                 "invoice.payment_failed"):
        assert mapped(body(event(kind, {"id": "x_1", "object": "thing", "a": 1}))) == []


@pytest.mark.parametrize(("kind", "code"), [("credit_note.voided", "unsupported_event"),
                                            ("treasury.flow.created", "unsupported_event")])
def test_events_finsync_cannot_map_are_mapping_errors(kind: str, code: str) -> None:
    with pytest.raises(MappingError) as caught:
        mapped(body(event(kind, {"id": "x_1", "object": "thing", "a": 1})))
    assert caught.value.code == code


def test_a_body_that_is_not_a_stripe_event_is_a_mapping_error() -> None:
    for raw, code in ((b"not json", "invalid_json"), (b"[]", "invalid_event"),
                      (b'{"object": "invoice"}', "invalid_event")):
        with pytest.raises(MappingError) as caught:
            mapped(raw)
        assert caught.value.code == code


def test_customer_versions_come_from_the_delivery() -> None:
    customer = {"id": "cus_1", "object": "customer", "name": "Acme", "currency": None,
                "address": {"country": "DE"}}
    (env,) = mapped(delivered(event("customer.updated", customer), version=4))
    account = event_of(env, CustomerUpserted).customer
    assert (account.version, account.billing_country, account.currency) == (4, "DE", "USD")
    assert env.aggregate == AggregateRef("customer_account", "cus_1", 4)


def test_a_broken_domain_rule_keeps_its_own_code() -> None:
    customer = {"id": "cus_1", "object": "customer", "name": "Acme", "currency": "xyz"}
    with pytest.raises(MappingError) as caught:
        mapped(delivered(event("customer.updated", customer), version=1))
    assert caught.value.code == "unknown_currency"
    assert str(caught.value).startswith("customer: ")
