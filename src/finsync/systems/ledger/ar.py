"""The AR subledger's open items, their settlement and aging.

Rules:
- An item is a receivable (invoice, refund beyond credit) under the AR control account, or a
  customer credit (unapplied cash, a credit larger than what its invoice owed) under the
  customer-credits account. Each subledger always equals its control account.
- An item keeps its amount in the document's currency and its booked (functional) value;
  settling part of it relieves the booked value pro rata, and settling the rest relieves
  exactly what is left, so nothing is stranded by rounding.
- Aging buckets by days past due: current, 1-30, 31-60, 61-90, over 90.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from finsync.domain.errors import DomainError
from finsync.domain.money import Money
from finsync.systems.ledger.chart import Role


class ItemKind(StrEnum):
    INVOICE = "invoice"
    CREDIT = "credit"
    DEBIT = "debit"


@dataclass(frozen=True, slots=True)
class OpenItem:
    id: str
    legal_entity: str
    customer_id: str
    kind: ItemKind
    document_id: str
    original: Money
    open: Money
    booked_open: Money
    posting_date: date
    due_date: date

    @property
    def role(self) -> Role:
        return Role.CUSTOMER_CREDITS if self.kind is ItemKind.CREDIT else \
            Role.ACCOUNTS_RECEIVABLE


@dataclass(frozen=True, slots=True)
class Settlement:
    item: OpenItem  # after settlement
    applied: Money  # in the item's currency
    relieved: Money  # booked (functional) value taken off the item


def settle(item: OpenItem, amount: Money) -> Settlement:
    if amount.currency != item.open.currency:
        raise DomainError(f"{item.document_id} is in {item.open.currency}, not {amount.currency}")
    if amount.amount <= 0 or item.open < amount:
        raise DomainError(f"cannot apply {amount} to {item.document_id}: {item.open} is open")
    if amount == item.open:
        relieved = item.booked_open
    else:
        relieved = Money(item.booked_open.amount * amount.amount / item.open.amount,
                         item.booked_open.currency).quantize()
    return Settlement(_with_open(item, item.open - amount, item.booked_open - relieved),
                      amount, relieved)


def reopen(item: OpenItem, amount: Money, booked: Money) -> Settlement:
    """Give back part of what was paid on an item (a refund of its payment): the item is
    open again by `amount`, booked at `booked`; recorded as a negative settlement."""
    if amount.currency != item.open.currency or amount.amount <= 0:
        raise DomainError(f"cannot re-open {item.document_id} by {amount}")
    return Settlement(_with_open(item, item.open + amount, item.booked_open + booked),
                      -amount, -booked)


def _with_open(item: OpenItem, open_: Money, booked_open: Money) -> OpenItem:
    """`replace(item, open=..., booked_open=...)`, built directly: `replace` looks the
    fields up again on every call, and a batch of payments settles one item each."""
    return OpenItem(item.id, item.legal_entity, item.customer_id, item.kind,
                    item.document_id, item.original, open_, booked_open, item.posting_date,
                    item.due_date)


BUCKETS = ("current", "1-30", "31-60", "61-90", "90+")


def bucket(item: OpenItem, as_of: date) -> str:
    late = (as_of - item.due_date).days
    if late <= 0:
        return "current"
    for limit, name in ((30, "1-30"), (60, "31-60"), (90, "61-90")):
        if late <= limit:
            return name
    return "90+"


def aging(items: Iterable[OpenItem], as_of: date, functional: str) -> dict[str, Money]:
    """Booked open receivables (credits negative) per bucket."""
    result = {name: Money.zero(functional) for name in BUCKETS}
    for item in items:
        signed = -item.booked_open if item.kind is ItemKind.CREDIT else item.booked_open
        result[bucket(item, as_of)] = result[bucket(item, as_of)] + signed
    return result
