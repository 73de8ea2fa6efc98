"""One-off invoices as point-in-time contracts, credit lines inside invoices, voids and
write-offs, through the pure engine (point_in_time.py, price_change.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

import pytest

from finsync.domain.catalog import StandaloneSellingPrice
from finsync.domain.invoice import VOID, WRITE_OFF, CreditMemo, DocumentLine, Invoice
from finsync.domain.money import total
from finsync.systems.revrec import (
    CreditMemoApplied,
    InvoiceRecorded,
    RecognitionPattern,
    RecognitionTerms,
    apply_event,
    balances,
    book_contract,
)
from finsync.systems.revrec.errors import AllocationError
from finsync.systems.revrec.obligation import ObligationState
from finsync.systems.revrec.point_in_time import book_invoice, contract_of
from finsync.systems.revrec.position import position_of
from finsync.systems.revrec.schedule import recognised_to
from tests.unit.revrec.builders import END, booked, line, modified, usd

SOLD = date(2026, 3, 10)


def _line(line_id: str, product: str, quantity: int, amount: str, start: date = SOLD,
          end: date = SOLD, contract_line: str | None = None) -> DocumentLine:
    return DocumentLine(line_id, product, product, quantity, usd(amount), usd("0"), start,
                        end, contract_line_id=contract_line)


def _invoice(*lines: DocumentLine, invoice_id: str = "in_9",
             contract: str | None = None) -> Invoice:
    subtotal = total([li.amount for li in lines], "USD")
    return Invoice(invoice_id, invoice_id.upper(), "cus_t", contract, None, "le_us", "USD",
                   SOLD, SOLD, lines, subtotal, usd("0"), subtotal)


def _memo(inv: Invoice, memo_id: str, reason: str, *lines: DocumentLine,
          on: date = date(2026, 4, 2)) -> CreditMemo:
    subtotal = total([li.amount for li in lines], "USD")
    return CreditMemo(memo_id, memo_id.upper(), inv.id, inv.customer_id, "le_us", "USD", on,
                      reason, lines, subtotal, usd("0"), subtotal)


# Setup 900.00, training 3 x 100.00, a 120.00 discount item: the discount is shared 900 : 300
# -> 90.00 and 30.00, so setup bills 810.00 and training 270.00 (transaction price 1 080.00).
ONE_OFF = _invoice(_line("il_setup", "prod_setup", 1, "900.00"),
                   _line("il_training", "prod_training", 3, "300.00"),
                   _line("il_discount", "prod_discount", 1, "-120.00"))


def _shares(obligations: Sequence[ObligationState]) -> list[tuple[str, str]]:
    return [(ob.obligation_id, str(ob.allocated_price.amount)) for ob in obligations]


def test_a_one_off_invoice_is_recognised_on_the_day_it_is_delivered() -> None:
    state = book_invoice("evt_inv", ONE_OFF, (), RecognitionTerms())
    assert state.contract.id == "in_9" and state.contract.customer_id == "cus_t"
    assert {ob.pattern for ob in state.obligations} == {RecognitionPattern.POINT_IN_TIME}
    assert _shares(state.obligations) == [("il_setup", "810.00"), ("il_training", "270.00")]
    assert [(b.obligation_id, str(b.amount.amount)) for b in state.billings] == [
        ("il_setup", "810.00"), ("il_training", "270.00")]
    assert recognised_to(state, SOLD) == usd("0.00")
    after = balances(state, SOLD + timedelta(days=1))
    assert (after.billed, after.recognised, after.deferred_revenue) \
        == (usd("1080.00"), usd("1080.00"), usd("0.00"))


def test_catalogue_ssps_allocate_a_one_off_invoice_when_they_cover_every_product() -> None:
    # SSPs 1 000.00 setup, 100.00 a training unit: 1 080.00 split 1 000 : 300 by largest
    # remainder = 830.77 and 249.23 (830.769.. and 249.230..); billings stay 810 and 270.
    ssps = (StandaloneSellingPrice("prod_setup", usd("1000.00"), date(2000, 1, 1)),
            StandaloneSellingPrice("prod_training", usd("100.00"), date(2000, 1, 1)))
    state = book_invoice("evt_inv", ONE_OFF, ssps, RecognitionTerms())
    assert _shares(state.obligations) == [("il_setup", "830.77"), ("il_training", "249.23")]
    assert balances(state, date(2026, 4, 1)).recognised == usd("1080.00")


def test_a_line_with_a_service_period_is_delivered_on_its_last_day() -> None:
    # Training 1 - 31 March (period end exclusive: 1 April): delivered 31 March.
    inv = _invoice(_line("il_t", "prod_training", 1, "500.00", date(2026, 3, 1),
                         date(2026, 4, 1)))
    (contract_line,) = contract_of(inv).lines
    assert (contract_line.start_date, contract_line.end_date) \
        == (date(2026, 3, 31), date(2026, 4, 1))
    state = book_invoice("evt_inv", inv, (), RecognitionTerms())
    assert recognised_to(state, date(2026, 3, 31)).is_zero
    assert recognised_to(state, date(2026, 4, 1)) == usd("500.00")


def test_an_invoice_that_credits_more_than_it_bills_is_no_contract() -> None:
    inv = _invoice(_line("il_1", "prod_setup", 1, "100.00"),
                   _line("il_2", "prod_discount", 1, "-150.00"))
    with pytest.raises(AllocationError):
        book_invoice("evt_inv", inv, (), RecognitionTerms())


def test_a_void_of_a_one_off_invoice_reverses_what_was_recognised() -> None:
    state = book_invoice("evt_inv", ONE_OFF, (), RecognitionTerms())
    void = _memo(ONE_OFF, "in_9_void", VOID, *ONE_OFF.lines)
    state = apply_event(state, CreditMemoApplied("evt_void", void))
    assert _shares(state.obligations) == [("il_setup", "0.00"), ("il_training", "0.00")]
    assert balances(state, date(2026, 4, 2)).recognised == usd("1080.00")
    after = balances(state, date(2026, 4, 3))
    assert (after.billed, after.recognised, after.deferred_revenue, after.unbilled_receivable) \
        == (usd("0.00"), usd("0.00"), usd("0.00"), usd("0.00"))


def test_a_credit_note_on_one_line_of_a_one_off_invoice_is_a_billing_correction() -> None:
    # Stripe's product_unsatisfactory is not a concession reason by default: billing falls
    # by 81.00 on setup, revenue stays, and the engine shows it as unbilled receivable.
    state = book_invoice("evt_inv", ONE_OFF, (), RecognitionTerms())
    note = _memo(ONE_OFF, "cn_1", "product_unsatisfactory",
                 _line("cnli_1", "prod_setup", 1, "81.00", contract_line="il_setup"))
    state = apply_event(state, CreditMemoApplied("evt_cn", note))
    held = balances(state, date(2026, 5, 1))
    assert (held.billed, held.recognised, held.unbilled_receivable) \
        == (usd("999.00"), usd("1080.00"), usd("81.00"))


def test_a_write_off_changes_neither_price_nor_billings() -> None:
    state = book_invoice("evt_inv", ONE_OFF, (), RecognitionTerms())
    write_off = _memo(ONE_OFF, "in_9_uncollectible", WRITE_OFF, *ONE_OFF.lines[:2])
    after = apply_event(state, CreditMemoApplied("evt_wo", write_off))
    assert after.obligations == state.obligations and after.billings == state.billings
    assert "evt_wo" in after.applied_event_ids


def test_an_invoice_bills_each_obligation_once_with_its_credit_lines_netted() -> None:
    # 500 -> 800 seats of si_1 on 1 July: unused -30 000.00, remaining +48 000.00 on one
    # invoice bill si_1 18 000.00 once; no credit memo appears in the contract's position.
    state = book_contract(booked(line("si_1", 500, "120")))
    state = apply_event(state, modified("evt_m", date(2026, 7, 1), line("si_1", 800, "120")))
    proration = _invoice(_line("il_unused", "prod_si_1", 500, "-30000.00", date(2026, 7, 1),
                               END, "si_1"),
                         _line("il_remaining", "prod_si_1", 800, "48000.00", date(2026, 7, 1),
                               END, "si_1"), invoice_id="in_2", contract="con_t")
    state = apply_event(state, InvoiceRecorded("evt_inv", proration))
    assert [(b.document_id, b.obligation_id, str(b.amount.amount)) for b in state.billings] \
        == [("in_2", "si_1", "18000.00")]
    assert position_of(state, date(2026, 8, 1)).credits == ()


def test_a_decrease_invoice_bills_its_obligation_a_net_credit() -> None:
    # 800 -> 500 seats: -48 000.00 + 30 000.00 = -18 000.00 billed to si_1 (a credit).
    state = book_contract(booked(line("si_1", 800, "120")))
    decrease = _invoice(_line("il_unused", "prod_si_1", 800, "-48000.00", date(2026, 7, 1),
                              END, "si_1"),
                        _line("il_remaining", "prod_si_1", 500, "30000.00", date(2026, 7, 1),
                              END, "si_1"), invoice_id="in_3", contract="con_t")
    state = apply_event(state, InvoiceRecorded("evt_inv", decrease))
    assert [str(b.amount.amount) for b in state.billings] == ["-18000.00"]


def test_a_void_of_a_subscription_invoice_reverses_its_net_billing_only() -> None:
    # The increase invoice above voided: si_1 is credited 18 000.00 once (a billing
    # correction: the subscription says whether the service goes on), the price stands.
    state = book_contract(booked(line("si_1", 500, "120")))
    increase = _invoice(_line("il_unused", "prod_si_1", 500, "-30000.00", date(2026, 7, 1),
                              END, "si_1"),
                        _line("il_remaining", "prod_si_1", 800, "48000.00", date(2026, 7, 1),
                              END, "si_1"), invoice_id="in_2", contract="con_t")
    state = apply_event(state, InvoiceRecorded("evt_inv", increase))
    price = state.transaction_price
    void = _memo(increase, "in_2_void", VOID, *increase.lines, on=date(2026, 7, 3))
    state = apply_event(state, CreditMemoApplied("evt_void", void))
    assert [(b.document_id, str(b.amount.amount)) for b in state.billings] \
        == [("in_2", "18000.00"), ("in_2_void", "-18000.00")]
    assert state.transaction_price == price
    assert position_of(state, date(2026, 8, 1)).credits == (("in_2_void", usd("18000.00")),)
