"""A card dispute's money through the ledger's pure core (systems/ledger/disputes.py).

Accounts of the default chart: 1000 cash, 1270 disputed funds receivable, 6500 dispute fees,
6510 chargeback losses, 7900 FX. The running case: a USD 100.00 payment disputed; Stripe
takes 100.00 and a 15.00 fee (net -115.00).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from finsync.domain.dispute import (
    DisputeClosure,
    DisputeFunds,
    DisputeOutcome,
    DisputeStep,
)
from finsync.domain.errors import DomainError
from finsync.domain.journal import JournalEntry, JournalLine, Side
from finsync.domain.money import Money
from finsync.systems.ledger.disputes import post_dispute_closure, post_dispute_funds
from finsync.systems.ledger.documents import Books
from finsync.systems.ledger.errors import LedgerError
from finsync.systems.ledger.fx import Rate, RateTable
from finsync.systems.ledger.rules import AccountMap
from tests.ledgerkit import CHART

RATES = RateTable([Rate("EUR", "USD", date(2026, 1, 1), Decimal("1.10")),
                   Rate("EUR", "USD", date(2026, 3, 1), Decimal("1.20"))])
OPENED, CLOSED = date(2026, 2, 10), date(2026, 3, 20)


def _books(on: date) -> Books:
    return Books("le_us", "USD", CHART, AccountMap(), lambda m: RATES.convert(m, "USD", on),
                 lambda m, day: RATES.convert(m, "USD", day))


def _funds(txn: str, amount: str, fee: str, on: date = OPENED,
           currency: str = "USD") -> DisputeFunds:
    return DisputeFunds(txn, "du_1", "pi_1", "le_us", Money.of(amount, currency),
                        Money.of(fee, currency), on)


def _closure(outcome: DisputeOutcome, *steps: DisputeStep,
             currency: str = "USD") -> DisputeClosure:
    unrecovered = -sum((s.amount for s in steps), Money.zero(currency))
    return DisputeClosure("du_1", "pi_1", "le_us", outcome, unrecovered, CLOSED, steps)


def _net(lines: tuple[JournalLine, ...]) -> dict[str, Decimal]:
    """Debit-positive balance per account, balanced-checked on the way."""
    JournalEntry("je", "le_us", OPENED, "check", lines)  # raises when unbalanced
    found: dict[str, Decimal] = {}
    for ln in lines:
        signed = ln.amount.amount if ln.side is Side.DEBIT else -ln.amount.amount
        found[ln.account] = found.get(ln.account, Decimal(0)) + signed
    return found


def test_withdrawn_funds_move_cash_into_the_dispute_receivable_and_the_fee_to_expense() -> None:
    # Dr 1270 100.00, Dr 6500 15.00 / Cr 1000 115.00
    posting = post_dispute_funds(_funds("txn_w", "-100.00", "15.00"), _books(OPENED))
    assert _net(posting.lines) == {"1270": Decimal("100.00"), "6500": Decimal("15.00"),
                                   "1000": Decimal("-115.00")}
    assert posting.opened == () and posting.settled == ()  # AR is not touched


def test_reinstated_funds_post_the_reverse() -> None:
    # the 100.00 back and the fee returned: Dr 1000 115.00 / Cr 1270 100.00, Cr 6500 15.00
    posting = post_dispute_funds(_funds("txn_r", "100.00", "-15.00", CLOSED), _books(CLOSED))
    assert _net(posting.lines) == {"1270": Decimal("-100.00"), "6500": Decimal("-15.00"),
                                   "1000": Decimal("115.00")}


def test_a_fee_the_processor_keeps_stays_an_expense_when_the_money_comes_back() -> None:
    # won, fee not returned: Dr 1000 100.00 / Cr 1270 100.00; 6500 keeps its 15.00
    posting = post_dispute_funds(_funds("txn_r", "100.00", "0.00", CLOSED), _books(CLOSED))
    assert _net(posting.lines) == {"1270": Decimal("-100.00"), "1000": Decimal("100.00")}


def test_a_lost_dispute_moves_the_receivable_to_chargeback_losses() -> None:
    # Dr 6510 100.00 / Cr 1270 100.00
    closure = _closure(DisputeOutcome.LOST, DisputeStep("txn_w", Money.of("-100.00", "USD"),
                                                        OPENED))
    assert _net(post_dispute_closure(closure, _books(CLOSED)).lines) == {
        "6510": Decimal("100.00"), "1270": Decimal("-100.00")}


def test_a_won_dispute_leaves_nothing_to_post() -> None:
    closure = _closure(DisputeOutcome.WON,
                       DisputeStep("txn_w", Money.of("-100.00", "USD"), OPENED),
                       DisputeStep("txn_r", Money.of("100.00", "USD"), CLOSED))
    assert closure.unrecovered.is_zero
    with pytest.raises(LedgerError, match="nothing to post"):
        post_dispute_closure(closure, _books(CLOSED))


def test_a_foreign_dispute_clears_its_receivable_at_the_rates_it_was_booked_at() -> None:
    """EUR 100.00 taken on 10 Feb at 1.10 (USD 110.00) and lost on 20 Mar, when EUR is 1.20:
    the loss relieves the USD 110.00 the receivable holds, not 120.00, and no FX arises."""
    taken = post_dispute_funds(_funds("txn_w", "-100.00", "15.00", currency="EUR"),
                               _books(OPENED))
    # debits 100.00 + 15.00 EUR = 115.00 EUR at 1.10 = 126.50: receivable 110.00, fee 16.50
    assert _net(taken.lines) == {"1270": Decimal("110.00"), "6500": Decimal("16.50"),
                                 "1000": Decimal("-126.50")}
    closure = _closure(DisputeOutcome.LOST,
                       DisputeStep("txn_w", Money.of("-100.00", "EUR"), OPENED),
                       currency="EUR")
    lost = post_dispute_closure(closure, _books(CLOSED))
    assert _net(lost.lines) == {"6510": Decimal("110.00"), "1270": Decimal("-110.00")}


def test_a_closure_must_say_what_its_steps_left() -> None:
    with pytest.raises(DomainError, match="unrecovered"):
        DisputeClosure("du_1", "pi_1", "le_us", DisputeOutcome.LOST, Money.of("1.00", "USD"),
                       CLOSED, (DisputeStep("txn_w", Money.of("-100.00", "USD"), OPENED),))


def test_funds_that_move_nothing_are_no_document() -> None:
    with pytest.raises(DomainError, match="moves no money"):
        _funds("txn_0", "0.00", "0.00")
