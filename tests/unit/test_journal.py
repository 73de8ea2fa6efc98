from datetime import date

import pytest

from finsync.domain.errors import DomainError, UnbalancedEntryError
from finsync.domain.journal import JournalEntry, JournalLine, Side
from finsync.domain.money import Money


def _line(account: str, side: Side, amount: str, currency: str = "USD") -> JournalLine:
    return JournalLine(account, side, Money.of(amount, currency))


def test_unbalanced_entry_cannot_be_built() -> None:
    with pytest.raises(UnbalancedEntryError, match="does not balance"):
        JournalEntry("je1", "le_us", date(2026, 1, 31), "x",
                     (_line("1200", Side.DEBIT, "100.00"), _line("2400", Side.CREDIT, "99.99")))


def test_entry_balances_per_currency() -> None:
    with pytest.raises(UnbalancedEntryError):
        JournalEntry("je1", "le_us", date(2026, 1, 31), "x",
                     (_line("1200", Side.DEBIT, "100.00"),
                      _line("2400", Side.CREDIT, "100.00", "EUR")))


def test_reversal_flips_every_line_and_links_the_original() -> None:
    entry = JournalEntry("je1", "le_us", date(2026, 1, 31), "invoice",
                         (_line("1200", Side.DEBIT, "100.00"),
                          _line("2400", Side.CREDIT, "100.00")))
    reversal = entry.reversal("je2", date(2026, 2, 1))
    assert reversal.reverses == "je1"
    assert [line.side for line in reversal.lines] == [Side.CREDIT, Side.DEBIT]


def test_line_amount_must_be_positive_minor_units() -> None:
    with pytest.raises(DomainError):
        _line("1200", Side.DEBIT, "-1.00")
    with pytest.raises(DomainError):
        _line("1200", Side.DEBIT, "1.001")
