"""Which AR items a plan names before the batch reads them (plans.py): a booking asks the
subledger only for the customer's items of the kind its plan declared, since a batch reads
no others (a payment never reads the credits earlier payments on account left)."""

from __future__ import annotations

from contextlib import suppress
from dataclasses import replace
from typing import Any

import pytest

from finsync.domain.money import Money
from finsync.systems.ledger.ar import ItemKind, OpenItem
from finsync.systems.ledger.documents import Books
from finsync.systems.ledger.errors import UnknownDocumentError
from finsync.systems.ledger.plans import Source, plan_for
from finsync.systems.ledger.rules import AccountMap
from tests.ledgerkit import CHART, credit_memo, invoice, payment, refund


class _Asked:
    """An empty subledger that notes which customer items a booking asks for."""

    def __init__(self) -> None:
        self.asked: set[tuple[str, ItemKind]] = set()

    def open_item(self, entity: str, item_id: str) -> OpenItem | None:
        return None

    def customer_items(self, entity: str, customer: str, currency: str,
                       kind: ItemKind) -> list[OpenItem]:
        self.asked.add((customer, kind))
        return []


PAID_FROM_CREDIT = replace(invoice("inv_1", ["100.00"]),
                           customer_credit_applied=Money.of("10.00", "USD"))


@pytest.mark.parametrize(("kind", "document", "reads"), [
    ("invoice", invoice("inv_1", ["100.00"]), None),
    ("invoice", PAID_FROM_CREDIT, ItemKind.CREDIT),
    ("payment", payment("pay_1", "50.00", {}), ItemKind.DEBIT),
    ("credit_memo", credit_memo("cm_1", "inv_1", "10.00"), ItemKind.DEBIT),
    ("refund", refund("re_1", "10.00"), ItemKind.CREDIT),
])
def test_a_booking_asks_only_for_the_kind_its_plan_names(kind: str, document: Any,
                                                         reads: ItemKind | None) -> None:
    plan = plan_for(kind, document, Source())
    assert plan.customer_kind is reads
    assert (plan.customer is None) is (reads is None)
    items = _Asked()
    books = Books("le_us", "USD", CHART, AccountMap(), lambda money: money)
    # Nothing open to meet (the credit memo's invoice, the credit paid from) is refused.
    with suppress(UnknownDocumentError):
        plan.build(items, books)
    assert items.asked <= ({(plan.customer, reads)} if reads else set())
