"""A STAND-IN for Stripe's billing records (issue 15 Build 7, helper "records") so that the
real-stack demo reconciles on localstripe until that port lands; delete it then, and give
the demo's configuration `[systems.billing] role = "billing", connector = "stripe"`.

It reads Stripe's own numbers live from the API, and covers only what the demo makes on
localstripe: subscriptions billed in advance for their whole term, invoices paid in full by
one PaymentIntent. Anything else (a credit note, a refund, a partly paid invoice, a customer
balance, a subscription still to bill) is refused with `NotCoveredError`, never guessed: the
demo then fails rather than reconcile against a wrong answer. As of a day: documents dated
after it are left out.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from finsync.connectors.ports import (
    ContractDocument,
    ContractValue,
    CustomerAmount,
    DocumentAmount,
)
from finsync.connectors.stripe.client import ClientSettings, StripeClient
from finsync.domain.money import Money

Obj = Mapping[str, Any]
ISSUED = ("open", "paid", "uncollectible")


class NotCoveredError(RuntimeError):
    """Stripe holds what the stand-in does not read: Build 7's port must answer it."""


class StripeBooksStandIn:
    """A `BillingRecordsPort` over Stripe's API, for one account = one legal entity."""

    def __init__(self, system: str, base_url: str, api_key: str, legal_entity: str) -> None:
        self.system, self._entity = system, legal_entity
        self._client = StripeClient(system, ClientSettings(api_key, base_url, timeout_s=30))

    @contextmanager
    def books(self) -> Iterator[Snapshot]:
        invoices = [i for i in self._client.list_all("/v1/invoices", [])
                    if i.get("status") in ISSUED]
        subscriptions = self._client.list_all("/v1/subscriptions", [("status", "all")])
        yield Snapshot(self._entity, invoices, subscriptions)


@dataclass(frozen=True, slots=True)
class Snapshot:
    entity: str
    invoices: list[dict[str, Any]]
    subscriptions: list[dict[str, Any]]

    def open_invoices(self, legal_entity: str, as_of: date) -> Iterator[DocumentAmount]:
        for inv in self._issued(legal_entity, as_of):
            paid = _paid_by(inv, as_of)
            yield DocumentAmount(inv["id"], inv["customer"], _currency(inv),
                                 int(inv["total"]) - paid)

    def customer_balances(self, legal_entity: str, currency: str,
                          as_of: date) -> Iterator[CustomerAmount]:
        totals: dict[str, int] = {}
        for doc in self.open_invoices(legal_entity, as_of):
            if doc.currency == currency:
                totals[doc.customer_id] = totals.get(doc.customer_id, 0) + doc.amount_minor
        for customer in sorted(totals):
            yield CustomerAmount(customer, totals[customer])

    def payments_applied(self, legal_entity: str, as_of: date) -> Iterator[DocumentAmount]:
        found = [DocumentAmount(_intent(inv), inv["customer"], _currency(inv), _paid_by(inv, as_of))
                 for inv in self._issued(legal_entity, as_of) if _paid_by(inv, as_of)]
        yield from sorted(found, key=lambda d: d.document_id)

    def credit_memos(self, legal_entity: str, as_of: date) -> Iterator[ContractDocument]:
        return iter(())  # none: an invoice with a credit note is refused in `_issued`

    def contract_values(self, legal_entity: str) -> Iterator[ContractValue]:
        if legal_entity != self.entity:
            return
        billed: dict[str, int] = {}
        for inv in self.invoices:
            sub = _subscription_of(inv)
            if sub is not None:
                billed[sub] = billed.get(sub, 0) + int(inv["subtotal"])
        for sub in sorted(self.subscriptions, key=lambda s: s["id"]):
            _require_billed_in_advance(sub, self.invoices)
            currency = str(sub["items"]["data"][0]["plan"]["currency"]).upper()
            yield ContractValue(sub["id"], sub["customer"],
                                Money.from_minor(billed.get(sub["id"], 0), currency))

    def _issued(self, legal_entity: str, as_of: date) -> list[dict[str, Any]]:
        if legal_entity != self.entity:
            return []
        found = []
        for inv in sorted(self.invoices, key=lambda i: i["id"]):
            _require_covered(inv)
            if _day(inv.get("status_transitions", {}).get("finalized_at")
                    or inv["created"]) <= as_of:
                found.append(inv)
        return found


def _require_covered(inv: Obj) -> None:
    credited = int(inv.get("post_payment_credit_notes_amount") or 0) + int(
        inv.get("pre_payment_credit_notes_amount") or 0)
    paid = int(inv.get("amount_paid") or 0)
    if credited or int(inv.get("starting_balance") or 0) or paid not in (0, int(inv["total"])):
        raise NotCoveredError(f"invoice {inv['id']} has a credit, a customer balance or a "
                              "partial payment: only Build 7's port reads it")
    refunded = (inv.get("charge") or {}).get("amount_refunded") if isinstance(
        inv.get("charge"), Mapping) else 0
    if refunded:
        raise NotCoveredError(f"invoice {inv['id']}'s charge was refunded")


def _require_billed_in_advance(sub: Obj, invoices: list[dict[str, Any]]) -> None:
    """The demo's subscriptions bill their whole term at once: one line covering it."""
    end = sub.get("current_period_end")
    lines = [line for inv in invoices if _subscription_of(inv) == sub["id"]
             for line in inv["lines"]["data"]]
    if not lines or max(line["period"]["end"] for line in lines) < (end or 0) \
            or sub.get("status") not in ("active", "canceled"):
        raise NotCoveredError(f"subscription {sub['id']} has fees still to bill")


def _paid_by(inv: Obj, as_of: date) -> int:
    paid_at = (inv.get("status_transitions") or {}).get("paid_at")
    return int(inv.get("amount_paid") or 0) if paid_at and _day(paid_at) <= as_of else 0


def _intent(inv: Obj) -> str:
    intent = inv.get("payment_intent")
    return str(intent["id"] if isinstance(intent, Mapping) else intent)


def _subscription_of(inv: Obj) -> str | None:
    parent = (inv.get("parent") or {}).get("subscription_details") or {}
    found = parent.get("subscription") or inv.get("subscription")
    return str(found) if found else None


def _currency(obj: Obj) -> str:
    return str(obj["currency"]).upper()


def _day(moment: int) -> date:
    return datetime.fromtimestamp(int(moment), UTC).date()
