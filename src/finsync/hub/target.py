"""Targets: how a canonical event becomes a call on a role's port.

Each target names the event types it takes, the port method each one calls, and the
milestone a success records (invoice posted, payment applied, revenue schedule created…).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from finsync.connectors.ports import DeliveryContext, LedgerPort, Receipt, RevenuePort
from finsync.domain.contract import ContractAmendment, SubscriptionContract
from finsync.domain.invoice import CreditMemo, Invoice
from finsync.domain.journal import JournalEntry, Side
from finsync.domain.money import Money
from finsync.domain.payment import Payment, Refund


class Target(Protocol):
    system: str

    def handles(self, event_type: str) -> bool: ...
    def deliver(self, event_type: str, document: Any, ctx: DeliveryContext) -> Receipt: ...
    def milestone(self, event_type: str) -> str | None: ...
    def find_receipt(self, key: str) -> Receipt | None: ...


@dataclass(frozen=True, slots=True)
class _Route:
    call: Callable[[Any, DeliveryContext], Receipt]
    milestone: str | None


class _PortTarget:
    def __init__(self, system: str, routes: Mapping[str, _Route],
                 find: Callable[[str], Receipt | None]) -> None:
        self.system, self._routes, self._find = system, dict(routes), find

    def handles(self, event_type: str) -> bool:
        return event_type in self._routes

    def deliver(self, event_type: str, document: Any, ctx: DeliveryContext) -> Receipt:
        return self._routes[event_type].call(document, ctx)

    def milestone(self, event_type: str) -> str | None:
        route = self._routes.get(event_type)
        return None if route is None else route.milestone

    def find_receipt(self, key: str) -> Receipt | None:
        return self._find(key)


def ledger_target(port: LedgerPort) -> Target:
    return _PortTarget(port.system, {
        "invoice.issued": _Route(port.post_invoice, "invoice_posted"),
        "credit_memo.issued": _Route(port.post_credit_memo, "credit_memo_posted"),
        "payment.applied": _Route(port.post_payment, "payment_applied"),
        "refund.issued": _Route(port.post_refund, "refund_posted"),
        "revenue.journal_recorded": _Route(port.post_journal_entry, "revenue_journal_posted"),
    }, port.find_receipt)


def revenue_target(port: RevenuePort) -> Target:
    def contract(document: SubscriptionContract, ctx: DeliveryContext) -> Receipt:
        return port.apply_contract(document, None, ctx)

    def amendment(document: ContractAmendment, ctx: DeliveryContext) -> Receipt:
        return port.apply_contract(document.contract, document, ctx)

    schedule = "revenue_schedule_created"
    return _PortTarget(port.system, {
        "contract.created": _Route(contract, schedule),
        "contract.amended": _Route(amendment, schedule),
        "contract.renewed": _Route(amendment, schedule),
        "contract.cancelled": _Route(amendment, schedule),
        "invoice.issued": _Route(port.record_invoice, "invoice_linked_to_revenue"),
        "credit_memo.issued": _Route(port.apply_credit_memo, "revenue_adjusted"),
        "usage.rated": _Route(port.record_usage, "usage_recognised"),
    }, port.find_receipt)


def amount_at_stake(document: Any) -> Money | None:
    """The money an undelivered document leaves unposted.

    A contract event puts the whole (revised) contract value at stake: the revenue engine
    reallocates all of it, not only the change.
    """
    if isinstance(document, Invoice | CreditMemo):
        return document.total
    if isinstance(document, Payment | Refund):
        return document.amount
    if isinstance(document, JournalEntry):
        return sum((ln.amount for ln in document.lines if ln.side is Side.DEBIT),
                   Money.zero(document.lines[0].amount.currency))
    if isinstance(document, ContractAmendment):
        document = document.contract
    if isinstance(document, SubscriptionContract) and document.lines:
        return sum((line.unit_price * line.quantity for line in document.lines[1:]),
                   document.lines[0].unit_price * document.lines[0].quantity).quantize()
    return None
