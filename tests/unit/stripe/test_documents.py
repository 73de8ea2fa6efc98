"""Stripe invoices and credit notes to canonical documents, in the CURRENT API shape
(`tests/stripeshapes`), in USD, EUR, JPY, KWD (three decimals) and ISK (a Stripe special
case). localstripe produces none of these shapes (no proration amounts, no credit notes, no
current-shape lines), so they are mapped from Stripe's published examples."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from finsync.connectors.stripe.delivery import Fetch
from finsync.connectors.stripe.mapping import fetch_plan
from finsync.connectors.stripe.taxes import rate_ids
from finsync.domain.aggregate import AggregateRef
from finsync.domain.errors import MappingError
from finsync.domain.events import CreditMemoIssued, InvoiceIssued
from finsync.domain.invoice import VOID, WRITE_OFF, CreditMemo, Invoice
from tests.stripeshapes import DAY, T0, delivered, event, webhook
from tests.stripeshapes.documents import (
    credit_note,
    credit_note_line,
    discount,
    invoice,
    invoice_item_parent,
    line,
    subscription_parent,
    tax,
)
from tests.unit.stripe.mapped import carried, mapped, only

MID = T0 + 15 * DAY  # 2026-12-12: half of a 30-day period left






def issued(inv: dict[str, Any], kind: str = "invoice.finalized") -> Invoice:
    return only(carried(event(kind, inv, evt="evt_inv")), InvoiceIssued).invoice


def amounts(doc: Invoice | CreditMemo) -> list[tuple[str, str]]:
    return [(str(li.amount.amount), str(li.tax_amount.amount)) for li in doc.lines]


# -- proration, discounts, tax, currencies -----------------------------------------------------

@pytest.mark.parametrize(("before", "after", "unused", "remaining", "net"), [
    # 10.00 USD a seat per 30-day period, changed with 15 days left:
    # decrease 800 -> 500: -800 x 10 x 15/30 = -4 000.00 and +500 x 10 x 15/30 = 2 500.00
    (800, 500, ("-4000.00", -400_000), ("2500.00", 250_000), "-1500.00"),
    # increase 500 -> 800: -2 500.00 and +4 000.00
    (500, 800, ("-2500.00", -250_000), ("4000.00", 400_000), "1500.00"),
])
def test_proration_lines_in_both_directions_bill_the_same_subscription_item(
        before: int, after: int, unused: tuple[str, int], remaining: tuple[str, int],
        net: str) -> None:
    prorated = subscription_parent("si_seats", proration=True)
    lines = [line("il_unused", unused[1], quantity=before, parent=prorated, start=MID,
                  description=f"Unused time on {before} x Seats"),
             line("il_remaining", remaining[1], quantity=after, parent=prorated, start=MID,
                  description=f"Remaining time on {after} x Seats")]
    inv = issued(invoice(lines, status="paid" if net.startswith("-") else "open"))
    assert amounts(inv) == [(unused[0], "0.00"), (remaining[0], "0.00")]
    assert [(li.proration, li.contract_line_id) for li in inv.lines] \
        == [(True, "si_seats"), (True, "si_seats")]
    assert str(inv.total.amount) == net and inv.contract_id == "sub_1"
    assert inv.lines[0].service_start == date(2026, 12, 12)


def test_invoice_and_line_discounts_come_off_each_line_with_exclusive_tax_on_top() -> None:
    # EUR. Seats 1 000.00 less a line discount of 100.00; analytics 400.00. The invoice's
    # 5 % coupon (65.00 on 1 300.00) is spread by Stripe over the lines: 45.00 and 20.00.
    # VAT 19 % on what is left: 855.00 -> 162.45, 380.00 -> 72.20. Total 1 469.65.
    lines = [line("il_seats", 100_000, currency="eur",
                  discounts=[discount(10_000, "di_line"), discount(4_500, "di_coupon")],
                  taxes=[tax(16_245)]),
             line("il_analytics", 40_000, currency="eur", product="prod_analytics",
                  price="price_analytics", parent=subscription_parent("si_analytics"),
                  discounts=[discount(2_000, "di_coupon")], taxes=[tax(7_220)])]
    raw = invoice(lines, currency="eur", invoice_discounts=[discount(6_500, "di_coupon")])
    assert raw["total"] == 146_965 and raw["total_discount_amounts"] == [
        discount(10_000, "di_line"), discount(6_500, "di_coupon")]
    inv = issued(raw)
    assert amounts(inv) == [("855.00", "162.45"), ("380.00", "72.20")]
    assert (str(inv.subtotal.amount), str(inv.tax_total.amount), str(inv.total.amount)) \
        == ("1235.00", "234.65", "1469.65")
    assert [li.contract_line_id for li in inv.lines] == ["si_seats", "si_analytics"]


def test_tax_included_in_a_yen_price_is_taken_out_of_the_line() -> None:
    # JPY has no minor unit: 11 000 yen with 10 % tax included is 10 000 + 1 000.
    raw = invoice([line("il_1", 11_000, currency="jpy", taxes=[tax(1_000, "inclusive")])],
                  currency="jpy")
    inv = issued(raw)
    assert amounts(inv) == [("10000", "1000")] and str(inv.total.amount) == "11000"


def test_three_decimal_dinars_keep_their_fils() -> None:
    # KWD: three decimals on Stripe's API and in ISO 4217 (payment amounts end in 0).
    raw = invoice([line("il_1", 12_340, currency="kwd", taxes=[tax(620)])], currency="kwd")
    inv = issued(raw)
    assert amounts(inv) == [("12.340", "0.620")] and str(inv.total.amount) == "12.960"


def test_icelandic_kronur_are_two_decimal_on_stripes_api() -> None:
    # 40 000 ISK is 4 000 000 on the API (Stripe's special case); ISO 4217 has no minor unit.
    raw = invoice([line("il_1", 4_000_000, currency="isk")], currency="isk")
    inv = issued(raw)
    assert str(inv.total.amount) == "40000" and inv.total.to_minor() == 40_000


def test_a_fraction_of_a_krona_cannot_be_booked() -> None:
    raw = invoice([line("il_1", 4_010, currency="isk")], currency="isk")  # 40.10 ISK
    with pytest.raises(MappingError) as caught:
        mapped(webhook(event("invoice.finalized", raw, evt="evt_inv")))
    assert caught.value.code == "amount_precision"


def test_older_shape_lines_name_their_subscription_item() -> None:
    raw = invoice([line("il_1", 1_000)])
    old = raw["lines"]["data"][0]
    del old["parent"], old["pricing"]
    old.update(subscription_item="si_old", proration=False,
               price={"id": "price_1", "object": "price", "product": "prod_seats"})
    assert issued(raw).lines[0].contract_line_id == "si_old"


# -- one-off invoices -------------------------------------------------------------------------

def test_a_one_off_invoice_names_no_contract_and_no_contract_line() -> None:
    raw = invoice([line("il_setup", 90_000, product="prod_setup", price="price_setup",
                        parent=invoice_item_parent("ii_setup"), start=T0, end=T0)],
                  subscription=None)
    (draft,) = mapped(webhook(event("invoice.finalized", raw, evt="evt_inv")))
    inv = draft.event.document
    assert isinstance(inv, Invoice) and inv.contract_id is None
    assert inv.lines[0].contract_line_id is None and inv.lines[0].product_id == "prod_setup"
    assert draft.correlation_id == "stripe:in_1"


# -- credit notes -----------------------------------------------------------------------------

def _seats_and_analytics() -> dict[str, Any]:
    # 300.00 seats + 30.00 tax, 100.00 analytics + 10.00 tax: 440.00
    return invoice([line("il_1", 30_000, taxes=[tax(3_000)]),
                    line("il_2", 10_000, product="prod_analytics", price="price_analytics",
                         parent=subscription_parent("si_analytics"), taxes=[tax(1_000)],
                         start=T0 + 10 * DAY)])


def _credited(note: dict[str, Any], inv: dict[str, Any]) -> CreditMemo:
    evt = event("credit_note.created", note, evt="evt_cn")
    rates = tuple(Fetch(f"tax_rate:{r}", "tax_rate", r) for r in rate_ids(note))
    assert fetch_plan(evt) == (Fetch("invoice", "invoice", inv["id"]), *rates)
    assert mapped(webhook(evt)) == []  # the poller's copy carries the invoice it credits
    return only(carried(evt, invoice=inv), CreditMemoIssued).credit_memo


def test_a_credit_note_line_keeps_the_product_and_contract_line_it_credits() -> None:
    note = credit_note([credit_note_line("cnli_1", 10_000, invoice_line="il_2",
                                         taxes=[tax(1_000)])])
    memo = _credited(note, _seats_and_analytics())
    (credit,) = memo.lines
    assert (credit.product_id, credit.contract_line_id) == ("prod_analytics", "si_analytics")
    assert (credit.service_start, credit.service_end) == (date(2026, 12, 7), date(2026, 12, 27))
    assert amounts(memo) == [("100.00", "10.00")] and memo.invoice_id == "in_1"
    assert memo.applied_to_invoice is not None and str(memo.applied_to_invoice.amount) == "110.00"


def test_a_custom_credit_line_is_spread_over_the_lines_of_the_invoice() -> None:
    # 50.00 + 5.00 tax over 330.00 : 110.00 -> 37.50 + 3.75 and 12.50 + 1.25
    note = credit_note([credit_note_line("cnli_1", 5_000, invoice_line=None,
                                         taxes=[tax(500)], description="Service credit")],
                       pre_payment=0)
    memo = _credited(note, _seats_and_analytics())
    assert [(li.line_id, li.product_id, li.contract_line_id) for li in memo.lines] == [
        ("cnli_1/il_1", "prod_seats", "si_seats"),
        ("cnli_1/il_2", "prod_analytics", "si_analytics")]
    assert amounts(memo) == [("37.50", "3.75"), ("12.50", "1.25")]
    assert memo.applied_to_invoice is not None and memo.applied_to_invoice.is_zero


def test_a_credit_note_on_a_one_off_invoice_credits_the_invoice_line_itself() -> None:
    one_off = invoice([line("il_setup", 90_000, product="prod_setup",
                            parent=invoice_item_parent("ii_setup"), start=T0, end=T0)],
                      subscription=None)
    memo = _credited(credit_note([credit_note_line("cnli_1", 9_000,
                                                   invoice_line="il_setup")]), one_off)
    assert (memo.lines[0].product_id, memo.lines[0].contract_line_id) \
        == ("prod_setup", "il_setup")


def test_a_credit_note_for_a_line_the_invoice_does_not_hold_is_refused() -> None:
    note = credit_note([credit_note_line("cnli_1", 1_000, invoice_line="il_9")])
    evt = event("credit_note.created", note, evt="evt_cn")
    with pytest.raises(MappingError) as caught:
        mapped(delivered(evt, related={"invoice": _seats_and_analytics()}))
    assert caught.value.code == "unknown_invoice_line"


def test_a_credit_note_and_a_fetched_invoice_that_do_not_match_are_refused() -> None:
    evt = event("credit_note.created", credit_note([credit_note_line("cnli_1", 1_000)],
                                                   invoice_id="in_2"), evt="evt_cn")
    with pytest.raises(MappingError) as caught:
        mapped(delivered(evt, related={"invoice": _seats_and_analytics()}))
    assert caught.value.code == "invalid_event"


def test_a_credit_note_that_names_no_invoice_is_refused() -> None:
    # Nothing to fetch beside it, so its delivery carries no invoice (a fuzz case).
    note = dict(credit_note([credit_note_line("cnli_1", 1_000)]), invoice=None)
    with pytest.raises(MappingError) as caught:
        mapped(delivered(event("credit_note.created", note, evt="evt_cn")))
    assert caught.value.code == "missing_field"


# -- voided and uncollectible invoices --------------------------------------------------------

def test_a_voided_invoice_comes_with_a_memo_that_reverses_all_of_it() -> None:
    raw = _seats_and_analytics()
    voided = dict(raw, status="void", status_transitions=dict(
        raw["status_transitions"], voided_at=T0 + 3 * DAY))
    envs = mapped(carried(event("invoice.voided", voided, evt="evt_void")))
    assert [e.source_event_id for e in envs] == ["evt_void", "evt_void/credit_memo:in_1_void"]
    assert envs[1].aggregate == AggregateRef("credit_memo", "in_1_void", 1)
    inv, memo = (e.event.document for e in envs)
    assert inv == issued(raw)  # the very document invoice.finalized gave: a duplicate
    assert isinstance(memo, CreditMemo) and memo.reason == VOID
    assert memo.lines == inv.lines and memo.total == inv.total  # 440.00, tax included
    assert memo.issue_date == date(2026, 11, 30) and memo.applied_to_invoice is None


def test_a_voided_invoice_of_nothing_has_no_memo() -> None:
    raw = invoice([line("il_1", 0)], status="void")
    (env,) = mapped(carried(event("invoice.voided", raw, evt="evt_void")))
    assert isinstance(env.event, InvoiceIssued)


def test_an_uncollectible_invoice_writes_off_what_it_still_owes_without_tax() -> None:
    # 440.00 billed, 140.00 paid: 300.00 written off, spread 330 : 110 -> 225.00 and 75.00
    raw = dict(_seats_and_analytics(), status="uncollectible", amount_paid=14_000,
               amount_remaining=30_000)
    raw["status_transitions"] = dict(raw["status_transitions"],
                                     marked_uncollectible_at=T0 + 40 * DAY)
    envs = mapped(carried(event("invoice.marked_uncollectible", raw, evt="evt_wo")))
    memo = envs[1].event.document
    assert isinstance(memo, CreditMemo) and memo.id == "in_1_uncollectible"
    assert memo.reason == WRITE_OFF and amounts(memo) == [("225.00", "0.00"), ("75.00", "0.00")]
    assert [li.contract_line_id for li in memo.lines] == ["si_seats", "si_analytics"]
    assert memo.applied_to_invoice == memo.total and str(memo.total.amount) == "300.00"
    assert memo.issue_date == date(2027, 1, 6)


def test_a_void_after_a_write_off_is_left_to_finance() -> None:
    raw = dict(_seats_and_analytics(), status="void")
    raw["status_transitions"] = dict(raw["status_transitions"], voided_at=T0 + 50 * DAY,
                                     marked_uncollectible_at=T0 + 40 * DAY)
    with pytest.raises(MappingError) as caught:
        mapped(carried(event("invoice.voided", raw, evt="evt_void")))
    assert caught.value.code == "void_after_write_off"


def test_a_voided_credit_note_is_still_a_visible_mapping_error() -> None:
    evt = event("credit_note.voided", credit_note([credit_note_line("cnli_1", 1_000)]),
                evt="evt_cnv")
    with pytest.raises(MappingError) as caught:
        mapped(webhook(evt))
    assert caught.value.code == "unsupported_event"


def test_document_amounts_are_decimals_not_floats() -> None:
    inv = issued(invoice([line("il_1", 1_999)]))
    assert isinstance(inv.total.amount, Decimal) and str(inv.total.amount) == "19.99"


def test_custom_lines_spread_over_a_long_invoice_are_bounded() -> None:
    long_invoice = invoice([line(f"il_{n}", 100) for n in range(100)])
    note = credit_note([credit_note_line(f"cnli_{n}", 1, invoice_line=None)
                        for n in range(21)])  # 21 x 100 = 2 100 lines > 2 000
    evt = event("credit_note.created", note, evt="evt_cn")
    with pytest.raises(MappingError) as caught:
        mapped(delivered(evt, related={"invoice": long_invoice}))
    assert caught.value.code == "too_many_lines" and "CREDIT_LINES_MAX (2000)" in str(
        caught.value)
