"""The Tryton connector's pure parts: wire encoding, error classes, documents as moves."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from finsync.connectors.ports import LedgerEvent
from finsync.connectors.tryton.accounts import AccountMap
from finsync.connectors.tryton.moves import (
    Mapper,
    Subledger,
    body_hash,
    parse_tax_description,
)
from finsync.connectors.tryton.rpc import classify, dumps, loads
from finsync.domain.errors import ExceptionClass, PermanentError, TransientError
from finsync.domain.events import (
    CreditMemoIssued,
    InvoiceIssued,
    PaymentApplied,
    RefundIssued,
    UsageRecorded,
)
from finsync.domain.invoice import UsageRecord
from finsync.domain.money import Money
from tests.ledgerkit import credit_memo, invoice, payment, refund

ACCOUNTS = AccountMap()


def _mapper() -> Mapper:
    return Mapper(ACCOUNTS, "USD", Subledger(ACCOUNTS.subledger))


def _lines(move: object) -> list[tuple[str, str, str, str | None]]:
    return [(ln.account, str(ln.debit), str(ln.credit), ln.tag)
            for ln in move.lines]  # type: ignore[attr-defined]


def test_decimals_and_dates_travel_as_tryton_objects() -> None:
    body = dumps([Decimal("42.00"), date(2026, 6, 30)])
    assert loads(body) == [Decimal("42.00"), date(2026, 6, 30)]
    assert b'{"__class__":"Decimal","decimal":"42.00"}' in body
    stamp = loads(b'{"__class__":"datetime","year":2026,"month":1,"day":2,"hour":3,'
                  b'"minute":4,"second":5}')
    assert stamp == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with pytest.raises(TypeError):
        dumps(1.5j)


@pytest.mark.parametrize(("kind", "args", "klass"), [
    ("UserError", ['The value "2026-02" for field "Period" in "Account Move" is not valid '
                   "according to its domain.", "", None], ExceptionClass.CLOSED_PERIOD),
    ("UserError", ['To continue, you must reopen the period "2026-05" of company "Acme" for '
                   'the date "05/10/2026".', "", None], ExceptionClass.CLOSED_PERIOD),
    ("UserError", ['To post move "(3)", you must balance all its lines debits and credits.',
                   "", None], ExceptionClass.MAPPING_ERROR),
    ("UserError", ['A value is required for field "Party".', "", None],
     ExceptionClass.MASTER_DATA_MISMATCH),
])
def test_tryton_refusals_are_classified_by_what_a_person_can_do(
        kind: str, args: list[object], klass: ExceptionClass) -> None:
    error = classify(kind, args)
    assert isinstance(error, PermanentError) and error.exception_class is klass
    assert str(args[0]) in str(error)


def test_conflicts_and_server_faults_are_transient() -> None:
    assert isinstance(classify("ConcurrencyException", "Records were modified"),
                      TransientError)
    assert isinstance(classify("could not serialize access", "Traceback …"), TransientError)


def test_invoice_debits_the_customers_receivable_and_credits_deferred_revenue() -> None:
    move = _mapper().move(InvoiceIssued(invoice("inv_1", ["100.00", "20.00"], tax="5.00")))
    assert _lines(move) == [("1.2.1", "130.00", "0", "inv_1"), ("2.2.2", "0", "100.00", None),
                            ("2.2.2", "0", "20.00", None), ("2.2.3", "0", "10.00", None)]
    assert move.lines[0].customer_id == "cus_1"


def test_tax_is_one_line_per_jurisdiction_described_with_its_document() -> None:
    # Two lines of 100.00: New York State 4 % (4.00 each), New York City 4.5 % (4.50 each);
    # California exempts (a zero line: nothing posted).
    breakdown = (("US-CA", "0"), ("US-NY", "4.00"), ("US-NY-NYC", "4.50"))
    move = _mapper().move(InvoiceIssued(invoice("inv_1", ["100.00", "100.00"],
                                                breakdown=breakdown)))
    taxes = [(ln.debit, ln.credit, ln.description) for ln in move.lines
             if ln.account == "2.2.3"]
    assert taxes == [(0, Decimal("8.00"), "tax:US-NY:inv_1"),
                     (0, Decimal("9.00"), "tax:US-NY-NYC:inv_1")]
    assert move.lines[0].debit == Decimal("217.00")  # 200.00 + 17.00


def test_a_credit_memo_gives_back_tax_per_jurisdiction() -> None:
    mapper = _mapper()
    mapper.move(InvoiceIssued(invoice("inv_1", ["100.00"], breakdown=(("US-NY", "4.00"),))))
    memo = mapper.move(CreditMemoIssued(credit_memo(
        "cm_1", "inv_1", "50.00", breakdown=(("US-NY", "2.00"),))))
    assert [(ln.debit, ln.credit, ln.description) for ln in memo.lines
            if ln.account == "2.2.3"] == [(Decimal("2.00"), 0, "tax:US-NY:cm_1")]


def test_tax_without_a_breakdown_is_one_line_without_a_jurisdiction() -> None:
    move = _mapper().move(InvoiceIssued(invoice("inv_old", ["10.00"], tax="0.80")))
    (tax,) = [ln for ln in move.lines if ln.account == "2.2.3"]
    assert tax.credit == Decimal("0.80") and tax.description == "tax::inv_old"
    assert parse_tax_description("tax::inv_old") == ("", "inv_old")
    assert parse_tax_description("tax:US-NY:inv:with:colons") == ("US-NY", "inv:with:colons")
    assert parse_tax_description("Invoice INV_1") is None


def test_a_proration_credit_line_is_a_debit_of_deferred_revenue() -> None:
    # 500 -> 800 seats mid-period: unused time -2 500.00, remaining time 4 000.00
    move = _mapper().move(InvoiceIssued(invoice("inv_1", ["-2500.00", "4000.00"])))
    assert _lines(move) == [("1.2.1", "1500.00", "0", "inv_1"), ("2.2.2", "2500.00", "0", None),
                            ("2.2.2", "0", "4000.00", None)]


def test_credit_memo_beyond_what_is_owed_becomes_a_customer_credit_refunded_later() -> None:
    mapper = _mapper()
    mapper.move(InvoiceIssued(invoice("inv_1", ["100.00"])))
    mapper.move(PaymentApplied(payment("pay_1", "70.00", {"inv_1": "70.00"})))
    memo = mapper.move(CreditMemoIssued(credit_memo("cm_1", "inv_1", "50.00")))
    assert _lines(memo) == [("2.2.2", "50.00", "0", None), ("1.2.1", "0", "30.00", "inv_1"),
                            ("2.2.5", "0", "20.00", "cm_1")]
    out = mapper.move(RefundIssued(refund("re_1", "25.00")))
    assert _lines(out) == [("2.2.5", "20.00", "0", "cm_1"), ("1.2.1", "5.00", "0", "re_1"),
                           ("1.1.1", "0", "25.00", None)]
    assert [(i.tag, str(i.balance)) for i in mapper.ledger.items()] == [("re_1", "5.00")]


def test_a_payment_of_an_unknown_invoice_or_beyond_what_it_owes_waits() -> None:
    """Beyond what is owed, the refund that re-opened the invoice in billing may still be
    on its way: retried (and a sequencing_error for a person when retries run out)."""
    mapper = _mapper()
    with pytest.raises(TransientError) as waiting:
        mapper.move(PaymentApplied(payment("pay_1", "10.00", {"inv_1": "10.00"})))
    assert waiting.value.exception_class is ExceptionClass.SEQUENCING_ERROR
    mapper.move(InvoiceIssued(invoice("inv_1", ["10.00"])))
    with pytest.raises(TransientError) as beyond:
        mapper.move(PaymentApplied(payment("pay_2", "20.00", {"inv_1": "20.00"})))
    assert beyond.value.exception_class is ExceptionClass.SEQUENCING_ERROR


def test_billings_decisions_make_the_order_of_arrival_irrelevant() -> None:
    """Billing: paid 100 on inv_1, refunded 10 of it (re-opening inv_1), repaid 10, then a
    credit memo of 30 it set against nothing (the invoice was paid): a customer credit."""
    repaid = payment("pay_2", "10.00", {"inv_1": "10.00"})
    back = replace(refund("re_1", "10.00"), from_credit=Money.zero("USD"),
                   reopens_invoice="inv_1")
    memo = replace(credit_memo("cm_1", "inv_1", "30.00"),
                   applied_to_invoice=Money.zero("USD"))
    documents: list[LedgerEvent] = [
        InvoiceIssued(invoice("inv_1", ["100.00"])),
        PaymentApplied(payment("pay_1", "100.00", {"inv_1": "100.00"})),
        RefundIssued(back), PaymentApplied(repaid), CreditMemoIssued(memo)]
    for order in ([0, 1, 2, 3, 4], [0, 3, 4, 2, 1], [0, 4, 3, 1, 2]):
        mapper, waiting = _mapper(), [documents[i] for i in order]
        for _ in range(len(waiting) ** 2):  # what waits is retried after the others
            if not waiting:
                break
            event = waiting.pop(0)
            try:
                mapper.move(event)
            except TransientError:
                waiting.append(event)
        assert not waiting, order
        assert [(i.tag, str(i.balance)) for i in mapper.ledger.items()] == \
            [("cm_1", "-30.00")], order


def test_a_document_in_another_currency_is_refused_not_misbooked() -> None:
    with pytest.raises(PermanentError) as caught:
        _mapper().move(InvoiceIssued(invoice("inv_1", ["10.00"], currency="EUR")))
    assert caught.value.exception_class is ExceptionClass.MAPPING_ERROR


def test_an_event_the_ledger_does_not_post_is_a_mapping_error() -> None:
    usage = UsageRecorded(UsageRecord("use_1", "con_1", "prod_usage", 10, date(2026, 1, 5)))
    with pytest.raises(PermanentError) as caught:
        _mapper().move(usage)  # type: ignore[arg-type]
    assert caught.value.exception_class is ExceptionClass.MAPPING_ERROR


def test_the_body_hash_in_every_move_never_changes() -> None:
    """Tryton keeps it in each move's description: a replay compares against it. This
    digest was computed by the code that posted the first moves (before the canonical
    codec changed); a different one would refuse every replay as a duplicate event."""
    first = "f3835b28bb6c2b81de6761e72cccbcbb98d0b47c8474057b80757fa33745c02a"
    assert body_hash("invoice", invoice("inv_1", ["100.00", "20.00"], tax="5.00")) == first


def test_an_invoice_paid_partly_from_the_customers_credit_uses_it_up_oldest_first() -> None:
    """Billing paid 30.00 of inv_2 (100.00) out of the customer's credit: 20.00 left by
    cm_1, 10.00 of the 25.00 left by cm_2. Until Tryton holds 30.00 of credit it waits."""
    mapper = _mapper()
    mapper.move(InvoiceIssued(invoice("inv_1", ["100.00"])))
    mapper.move(PaymentApplied(payment("pay_1", "100.00", {"inv_1": "100.00"})))
    inv_2 = replace(invoice("inv_2", ["100.00"], on=date(2026, 3, 1)),
                    customer_credit_applied=Money.of("30.00", "USD"))
    mapper.move(CreditMemoIssued(credit_memo("cm_1", "inv_1", "20.00")))
    with pytest.raises(TransientError) as waiting:
        mapper.move(InvoiceIssued(inv_2))
    assert waiting.value.exception_class is ExceptionClass.SEQUENCING_ERROR
    mapper.move(CreditMemoIssued(credit_memo("cm_2", "inv_1", "25.00", on=date(2026, 2, 2))))
    move = mapper.move(InvoiceIssued(inv_2))
    assert _lines(move)[2:] == [("2.2.5", "20.00", "0", "cm_1"),
                                ("2.2.5", "10.00", "0", "cm_2"),
                                ("1.2.1", "0", "30.00", "inv_2")]
    assert [(i.tag, str(i.balance)) for i in mapper.ledger.items()] == \
        [("inv_2", "70.00"), ("cm_2", "-15.00")]
