"""The ledger-port contract: what every ERP connector must do, whoever implements it.

A test module runs it by defining a `harness` fixture (see `LedgerHarness`); the embedded
ledger runs it in test_ledger_port.py, and the Tryton connector will run the very same
suite against a real trytond.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal

import pytest

from finsync.connectors.ports import (
    BatchLedgerPort,
    DeliveryContext,
    JournalPreviewPort,
    LedgerBooksPort,
    LedgerPort,
    Posting,
    Receipt,
)
from finsync.domain.errors import ExceptionClass, PermanentError, TransientError
from finsync.domain.events import (
    DisputeClosed,
    DisputeFundsReinstated,
    DisputeFundsWithdrawn,
    InvoiceIssued,
    UsageRecorded,
)
from finsync.domain.invoice import UsageRecord
from finsync.domain.journal import JournalEntry, JournalLine, PeriodStatus, Side
from finsync.domain.money import Money
from tests.ledgerkit import credit_memo, dispute_closure, dispute_funds, invoice, payment

AS_OF = date(2026, 12, 31)


@dataclass
class LedgerHarness:
    """A port on fresh books for entity `le_us` (USD, 2026 open), and a way to close one
    of its periods as finance would."""

    port: LedgerPort
    close_period: Callable[[str, str], None]
    revenue_account: str
    deferred_account: str


def ctx(key: str) -> DeliveryContext:
    return DeliveryContext(key, f"evt-{key}", "amd-1")


def _total(harness: LedgerHarness) -> Decimal:
    return sum((b.balance.amount for b in harness.port.trial_balance("le_us", AS_OF)),
               Decimal(0))


def _snapshot(harness: LedgerHarness) -> list[tuple[str, str]]:
    return [(b.account, str(b.balance)) for b in harness.port.trial_balance("le_us", AS_OF)]


# finsync's own chart codes of the dispute roles, as each ERP resolves them.
_DISPUTE_CODES = ("1000", "1270", "6500", "6510")


def _balances(harness: LedgerHarness) -> dict[str, Decimal]:
    """Non-zero balances of cash and the dispute accounts, by finsync's codes."""
    port = harness.port
    codes = {port.resolve_account(code): code for code in _DISPUTE_CODES}
    return {codes[b.account]: b.balance.amount for b in port.trial_balance("le_us", AS_OF)
            if b.account in codes and not b.balance.is_zero}


def _books_world(port: LedgerPort) -> None:
    """cus_2: inv_b (300.00 on 15 Jan, 120.00 paid on 20 Jan, 30.00 credited on 1 Feb);
    cus_1: inv_a (80.00 on 1 Mar, 50.00 paid on 25 Mar)."""
    port.post_invoice(invoice("inv_b", ["300.00"], customer="cus_2"), ctx("b1"))
    port.post_invoice(invoice("inv_a", ["80.00"], on=date(2026, 3, 1)), ctx("b2"))
    port.post_payment(payment("pay_1", "120.00", {"inv_b": "120.00"}, customer="cus_2"),
                      ctx("b3"))
    port.post_credit_memo(credit_memo("cm_1", "inv_b", "30.00", customer="cus_2"), ctx("b4"))
    port.post_payment(payment("pay_2", "50.00", {"inv_a": "50.00"}, on=date(2026, 3, 25)),
                      ctx("b5"))


class LedgerBooksContract:
    """For a ledger that also offers reconciliation's set-based reads (`LedgerBooksPort`);
    an ERP without them is reconciled from its lists."""

    def test_books_agree_with_the_lists_on_every_day(self, harness: LedgerHarness) -> None:
        """Reconciliation's set-based reads (`books()`) say what the lists say, at any day:
        open items per document (credits negative), per customer, applications summed per
        settling document, balances at day ends; streams in code-point order."""
        port = harness.port
        assert isinstance(port, LedgerBooksPort)
        _books_world(port)
        for day in (date(2026, 1, 19), date(2026, 1, 31), date(2026, 3, 1), AS_OF):
            with port.books() as books:
                items = [(d.document_id, d.customer_id, d.amount_minor)
                         for d in books.open_items("le_us", day)]
                customers = [(c.customer_id, c.amount_minor)
                             for c in books.customer_open("le_us", "USD", day)]
                applied = [(d.document_id, d.amount_minor)
                           for d in books.applied_by("le_us", day)]
                [balances] = books.balances("le_us", [harness.revenue_account,
                                                      harness.deferred_account, "1100"], [day])
            listed = sorted((r.document_id, r.customer_id, r.open_amount.to_minor())
                            for r in port.receivables("le_us", day))
            assert items == listed
            by_customer: dict[str, int] = {}
            for _, customer, minor in listed:
                by_customer[customer] = by_customer.get(customer, 0) + minor
            assert [c for c in customers if c[1]] == sorted(
                (c, m) for c, m in by_customer.items() if m)
            summed: dict[str, int] = {}
            for a in port.applications("le_us", day):
                summed[a.by] = summed.get(a.by, 0) + a.amount.to_minor()
            assert applied == sorted(summed.items())
            trial = {b.account: b.balance for b in port.trial_balance("le_us", day)}
            assert {a: m for a, m in balances.items() if not m.is_zero} == {
                a: m for a, m in trial.items() if a in balances and not m.is_zero}
        # 31 Mar: inv_b 300 - 120 - 30 = 150.00 open; inv_a 80 - 50 = 30.00
        with port.books() as books:
            assert [(d.document_id, d.amount_minor) for d in books.open_items("le_us", AS_OF)] \
                == [("inv_a", 3000), ("inv_b", 15000)]


class LedgerPortContract:
    def test_posting_returns_a_reference_to_the_document(self, harness: LedgerHarness) -> None:
        receipt = harness.port.post_invoice(invoice("inv_1", ["100.00"]), ctx("k1"))
        assert [(r.canonical_id, r.object_type) for r in receipt.references] == \
            [("inv_1", "invoice")]
        assert receipt.references[0].external_id == receipt.external_id

    def test_same_key_again_returns_the_first_receipt_and_changes_nothing(
            self, harness: LedgerHarness) -> None:
        first = harness.port.post_invoice(invoice("inv_1", ["100.00"]), ctx("k1"))
        before = _snapshot(harness)
        again = harness.port.post_invoice(invoice("inv_1", ["100.00"]), ctx("k1"))
        assert again.external_id == first.external_id
        assert _snapshot(harness) == before
        found = harness.port.find_receipt("k1")
        assert found is not None and found.external_id == first.external_id

    def test_same_key_with_another_body_is_refused(self, harness: LedgerHarness) -> None:
        harness.port.post_invoice(invoice("inv_1", ["100.00"]), ctx("k1"))
        with pytest.raises(PermanentError) as caught:
            harness.port.post_invoice(invoice("inv_1", ["999.00"]), ctx("k1"))
        assert caught.value.exception_class is ExceptionClass.DUPLICATE_EVENT

    def test_closed_period_is_refused_and_nothing_is_written(
            self, harness: LedgerHarness) -> None:
        harness.close_period("le_us", "2026-01")
        assert harness.port.period_status("le_us", date(2026, 1, 15)) is PeriodStatus.CLOSED
        with pytest.raises(PermanentError) as caught:
            harness.port.post_invoice(invoice("inv_1", ["100.00"]), ctx("k1"))
        assert caught.value.exception_class is ExceptionClass.CLOSED_PERIOD
        assert harness.port.trial_balance("le_us", AS_OF) == []
        assert harness.port.find_receipt("k1") is None

    def test_payment_settles_the_receivable(self, harness: LedgerHarness) -> None:
        harness.port.post_invoice(invoice("inv_1", ["100.00"]), ctx("k1"))
        assert [(r.document_id, str(r.open_amount)) for r in
                harness.port.receivables("le_us", AS_OF)] == [("inv_1", "100.00 USD")]
        harness.port.post_payment(payment("pay_1", "100.00", {"inv_1": "100.00"}), ctx("k2"))
        assert harness.port.receivables("le_us", AS_OF) == []
        assert _total(harness) == 0

    def test_credit_memo_reduces_what_is_owed(self, harness: LedgerHarness) -> None:
        harness.port.post_invoice(invoice("inv_1", ["100.00"]), ctx("k1"))
        harness.port.post_credit_memo(credit_memo("cm_1", "inv_1", "40.00"), ctx("k2"))
        (owed,) = harness.port.receivables("le_us", AS_OF)
        assert owed.open_amount == Money.of("60.00", "USD")

    def test_an_invoice_paid_partly_from_the_customers_credit_is_settled_by_it(
            self, harness: LedgerHarness) -> None:
        """Billing paid 30.00 of inv_2 (100.00) out of the credit a 30.00 credit memo left on
        the paid inv_1: inv_2 owes 70.00 and the credit is used up. Before that credit is in
        the ledger, inv_2 waits (another aggregate may still be on its way)."""
        port = harness.port
        port.post_invoice(invoice("inv_1", ["50.00"]), ctx("k1"))
        port.post_payment(payment("pay_1", "50.00", {"inv_1": "50.00"}), ctx("k2"))
        inv_2 = replace(invoice("inv_2", ["100.00"], on=date(2026, 3, 1)),
                        customer_credit_applied=Money.of("30.00", "USD"))
        with pytest.raises(TransientError) as caught:
            port.post_invoice(inv_2, ctx("k3"))
        assert caught.value.exception_class is ExceptionClass.SEQUENCING_ERROR
        port.post_credit_memo(credit_memo("cm_1", "inv_1", "30.00"), ctx("k4"))
        port.post_invoice(inv_2, ctx("k3"))
        assert [(r.document_id, str(r.open_amount)) for r in
                port.receivables("le_us", AS_OF)] == [("inv_2", "70.00 USD")]
        port.post_payment(payment("pay_2", "70.00", {"inv_2": "70.00"}, on=date(2026, 3, 5)),
                          ctx("k5"))
        assert port.receivables("le_us", AS_OF) == []
        assert _total(harness) == 0

    def test_the_preview_of_an_invoice_paid_partly_from_credit_uses_that_credit(
            self, harness: LedgerHarness) -> None:
        """Summary posting renders an invoice against the credit it consumed: Dr receivable
        100.00 and customer credits 30.00 / Cr deferred revenue 100.00 and receivable
        30.00."""
        port = harness.port
        if not isinstance(port, JournalPreviewPort):
            pytest.skip("the port previews nothing")
        inv = replace(invoice("inv_1", ["100.00"]),
                      customer_credit_applied=Money.of("30.00", "USD"))
        entry = port.preview_journal(InvoiceIssued(inv))
        sides = {side: sorted(str(ln.amount.amount) for ln in entry.lines if ln.side is side)
                 for side in Side}
        assert sides == {Side.DEBIT: ["100.00", "30.00"], Side.CREDIT: ["100.00", "30.00"]}
        assert harness.deferred_account in {ln.account for ln in entry.lines}

    def test_payment_before_its_invoice_is_transient(self, harness: LedgerHarness) -> None:
        with pytest.raises(TransientError) as caught:
            harness.port.post_payment(payment("pay_1", "10.00", {"inv_9": "10.00"}), ctx("k1"))
        assert caught.value.exception_class is ExceptionClass.SEQUENCING_ERROR

    def test_revenue_journal_moves_deferred_revenue_to_revenue(
            self, harness: LedgerHarness) -> None:
        harness.port.post_invoice(invoice("inv_1", ["120.00"]), ctx("k1"))
        amount = Money.of("10.00", "USD")
        entry = JournalEntry("rev-2026-01", "le_us", date(2026, 1, 31), "Revenue 2026-01", (
            JournalLine(harness.deferred_account, Side.DEBIT, amount),
            JournalLine(harness.revenue_account, Side.CREDIT, amount)))
        harness.port.post_journal_entry(entry, ctx("k2"))
        balances = {b.account: b.balance for b in harness.port.trial_balance("le_us", AS_OF)}
        assert balances[harness.revenue_account] == Money.of("-10.00", "USD")
        assert balances[harness.deferred_account] == Money.of("-110.00", "USD")
        assert _total(harness) == 0

    def test_a_lost_dispute_books_the_fee_and_the_loss_in_any_order(
            self, harness: LedgerHarness) -> None:
        """100.00 disputed, 15.00 fee: Dr dispute receivable 100.00, Dr fees 15.00 / Cr cash
        115.00; lost: Dr chargeback losses 100.00 / Cr dispute receivable 100.00. The
        closure first (the receivable -100.00 in between) ends the same."""
        port = harness.port
        port.post_dispute_closure(dispute_closure("lost", "-100.00"), ctx("k1"))
        port.post_dispute_funds(dispute_funds("txn_w", "-100.00", "15.00"), ctx("k2"))
        assert _balances(harness) == {"1000": Decimal("-115.00"), "6500": Decimal("15.00"),
                                      "6510": Decimal("100.00")}
        assert port.receivables("le_us", AS_OF) == []  # a customer's AR is not touched

    def test_a_won_dispute_gives_everything_back_and_its_closure_posts_nothing(
            self, harness: LedgerHarness) -> None:
        port = harness.port
        port.post_dispute_funds(dispute_funds("txn_r", "100.00", "-15.00",
                                              on=date(2026, 3, 1)), ctx("k1"))
        port.post_dispute_funds(dispute_funds("txn_w", "-100.00", "15.00"), ctx("k2"))
        closed = port.post_dispute_closure(dispute_closure("won"), ctx("k3"))
        again = port.post_dispute_closure(dispute_closure("won"), ctx("k3"))
        assert closed == again and closed.references == ()
        assert _balances(harness) == {}
        # the same step again under its key changes nothing
        port.post_dispute_funds(dispute_funds("txn_w", "-100.00", "15.00"), ctx("k2"))
        assert _balances(harness) == {}

    def test_a_batch_posts_each_dispute_step_and_answers_a_closure_with_nothing_left(
            self, harness: LedgerHarness) -> None:
        port = harness.port
        if not isinstance(port, BatchLedgerPort):
            pytest.skip("the port takes no batches")
        taken = DisputeFundsWithdrawn(dispute_funds("txn_w", "-100.00", "15.00"))
        won = DisputeClosed(dispute_closure("won", "-100.00", "100.00"))
        back = DisputeFundsReinstated(dispute_funds("txn_r", "100.00", "0.00"))
        answers = port.post_batch([Posting(taken, ctx("k1")), Posting(won, ctx("k2")),
                                   Posting(back, ctx("k3"))])
        assert all(isinstance(a, Receipt) for a in answers), answers
        assert [len(a.references) for a in answers if isinstance(a, Receipt)] == [1, 0, 1]
        # the fee is kept: Dr fees 15.00 / Cr cash 15.00 in all
        assert _balances(harness) == {"1000": Decimal("-15.00"), "6500": Decimal("15.00")}

    def test_unknown_account_is_refused(self, harness: LedgerHarness) -> None:
        amount = Money.of("10.00", "USD")
        entry = JournalEntry("x", "le_us", date(2026, 1, 31), "bad", (
            JournalLine("no-such-account", Side.DEBIT, amount),
            JournalLine(harness.revenue_account, Side.CREDIT, amount)))
        with pytest.raises(PermanentError) as caught:
            harness.port.post_journal_entry(entry, ctx("k1"))
        assert caught.value.exception_class is ExceptionClass.MASTER_DATA_MISMATCH
        assert harness.port.trial_balance("le_us", AS_OF) == []

    def test_an_event_it_does_not_post_is_a_mapping_error_alone_in_its_batch(
            self, harness: LedgerHarness) -> None:
        """Types are no proof at run time: usage sent to an ERP is refused as a mapping
        error, and the invoice beside it in the batch still posts."""
        port = harness.port
        if not isinstance(port, BatchLedgerPort | JournalPreviewPort):
            pytest.skip("the port takes no batches and previews nothing")
        usage = UsageRecorded(UsageRecord("use_1", "con_1", "prod_usage", 10, date(2026, 1, 5)))
        if isinstance(port, BatchLedgerPort):
            wrong = Posting(usage, ctx("k1"))  # type: ignore[arg-type]
            right = Posting(InvoiceIssued(invoice("inv_1", ["100.00"])), ctx("k2"))
            refused, posted = port.post_batch([wrong, right])
            assert isinstance(refused, PermanentError)
            assert refused.exception_class is ExceptionClass.MAPPING_ERROR
            assert isinstance(posted, Receipt)
            assert harness.port.find_receipt("k1") is None
        if isinstance(port, JournalPreviewPort):
            with pytest.raises(PermanentError) as caught:
                port.preview_journal(usage)  # type: ignore[arg-type]
            assert caught.value.exception_class is ExceptionClass.MAPPING_ERROR
