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


def test_line_amount_in_minor_units_whatever_its_written_exponent() -> None:
    # "1.5" and "1.500" USD are 150 cents; "1.501" is not a number of cents.
    assert _line("1200", Side.DEBIT, "1.5").amount.to_minor() == 150
    assert _line("1200", Side.DEBIT, "1.500").amount.to_minor() == 150
    with pytest.raises(DomainError):
        _line("1200", Side.DEBIT, "1.501")
    with pytest.raises(DomainError):
        JournalLine("1200", Side.DEBIT, Money.of("1.00", "EUR"), (), Money.of("0.001", "USD"))


def test_entry_in_two_currencies_balances_each() -> None:
    entry = JournalEntry("je1", "le_us", date(2026, 1, 31), "x",
                         (_line("1200", Side.DEBIT, "100.00"),
                          _line("1200", Side.DEBIT, "5", "EUR"),
                          _line("2400", Side.CREDIT, "100"),
                          _line("2400", Side.CREDIT, "5.00", "EUR")))
    assert len(entry.lines) == 4
    with pytest.raises(UnbalancedEntryError):
        JournalEntry("je1", "le_us", date(2026, 1, 31), "x",
                     (_line("1200", Side.DEBIT, "100.00"), _line("1200", Side.DEBIT, "5", "EUR"),
                      _line("2400", Side.CREDIT, "105.00")))
