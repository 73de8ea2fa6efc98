"""Journal entries and accounting periods.

Rules:
- A journal entry balances per currency: the sum of debits equals the sum of credits for each
  currency it touches. An unbalanced entry cannot be built.
- A line is a debit or a credit, positive, at its currency's minor-unit precision.
- Posted entries are immutable; a correction is a reversing entry linked to the original.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum

from finsync.domain.errors import DomainError, UnbalancedEntryError
from finsync.domain.money import Money, quantum


class Side(StrEnum):
    DEBIT = "debit"
    CREDIT = "credit"


@dataclass(frozen=True, slots=True)
class JournalLine:
    """`amount` is in the entity's functional currency; `transaction_amount`, when the
    document was in another currency, is what the document said."""

    account: str
    side: Side
    amount: Money
    dimensions: tuple[tuple[str, str], ...] = ()
    transaction_amount: Money | None = None

    def __post_init__(self) -> None:
        _check_line_amount(self.account, self.amount)
        if self.transaction_amount is not None:
            _check_line_amount(self.account, self.transaction_amount)


@dataclass(frozen=True, slots=True)
class JournalEntry:
    id: str
    legal_entity: str
    posting_date: date
    memo: str
    lines: tuple[JournalLine, ...]
    correlation_id: str | None = None
    reverses: str | None = None
    source_refs: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        if len(self.lines) < 2:
            raise UnbalancedEntryError(f"entry {self.id} needs at least two lines")
        if _balanced_in_one_currency(self.lines):
            return  # the common case, decided without a total per currency
        net: dict[str, Decimal] = defaultdict(Decimal)
        for line in self.lines:
            sign = 1 if line.side is Side.DEBIT else -1
            net[line.amount.currency] += sign * line.amount.amount
        unbalanced = {c: v for c, v in net.items() if v != 0}
        if unbalanced:
            raise UnbalancedEntryError(f"entry {self.id} does not balance: {unbalanced}")

    def reversal(self, entry_id: str, posting_date: date) -> JournalEntry:
        flipped = tuple(
            JournalLine(line.account, Side.CREDIT if line.side is Side.DEBIT else Side.DEBIT,
                        line.amount, line.dimensions, line.transaction_amount)
            for line in self.lines
        )
        return JournalEntry(entry_id, self.legal_entity, posting_date, f"Reversal of {self.id}",
                            flipped, self.correlation_id, reverses=self.id,
                            source_refs=self.source_refs)


def _check_line_amount(account: str, money: Money) -> None:
    amount = money.amount
    if amount <= 0:
        raise DomainError(f"journal line on {account}: {money} must be positive "
                          "and in minor units")
    unit = quantum(money.currency)
    # Written at the minor unit (the common case) is in minor units; otherwise the amount
    # must not change when rounded to it ("1.5" USD is, "1.005" is not).
    if not amount.same_quantum(unit) and amount != amount.quantize(unit):
        raise DomainError(f"journal line on {account}: {money} must be positive "
                          "and in minor units")


def _balanced_in_one_currency(lines: tuple[JournalLine, ...]) -> bool:
    """True when every line is in one currency and the debits equal the credits."""
    currency = lines[0].amount.currency
    debits = credits = Decimal(0)
    for line in lines:
        money = line.amount
        if money.currency != currency:
            return False
        if line.side is Side.DEBIT:
            debits += money.amount
        else:
            credits += money.amount
    return debits == credits


class PeriodStatus(StrEnum):
    OPEN = "open"
    SOFT_CLOSED = "soft_closed"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class AccountingPeriod:
    legal_entity: str
    name: str  # YYYY-MM
    start: date
    end: date  # exclusive
    status: PeriodStatus = PeriodStatus.OPEN
