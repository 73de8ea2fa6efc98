"""finsync's marks on Stripe objects: the metadata the subscription platform writes
(`order_params`, `orders`) and the Stripe source's mapping reads back (pure).

Rules:
- Written: a subscription the commercial layer ordered names its canonical contract id,
  its customer's canonical id, and the quote (order id) and CPQ version last applied, in
  the request that made the change; each item names its line id and the contract id; a
  customer names its canonical id and master version.
- An object's identity is its mark: a subscription marked with a contract id is that
  contract, a customer marked with a customer id is that customer (the Stripe id stays in
  its references). The mark is read from the object, else from the event's
  `previous_attributes.metadata` (a change that removed it is still that object's).
  An unmarked object keeps Stripe's id.
- Versions (`aggregate_key`, the poller's numbering): a marked customer's count per
  canonical id, so they rise across every Stripe customer marked with it (a master
  customer written twice to Stripe is one customer whose latest state wins). A
  subscription's count per subscription, marked or not: the port makes one subscription
  per contract, and a second one marked with the same contract is then a second version 1
  of it, a `sequencing_error` finance sees, never an amendment of the first.
- A mark is a non-empty string of at most `MARK_MAX` characters (it becomes an id in the
  hub); any other is refused (`invalid_field`), never taken for "unmarked".
- Caused by a quote (`caused_quote`): `customer.subscription.created` of a marked
  subscription, and a `customer.subscription.updated` whose `previous_attributes` show the
  quote mark moved to the current quote (the port changes the subscription and moves the
  mark in one request). Not an update that newly schedules a cancellation
  (`cancel_at_period_end`, `cancel_at`: Stripe's event is not the cancellation the order
  asks), nor any other event (a period's roll, a change made at Stripe): those keep the
  subscription's own thread.
- An invoice is tied to a contract by the subscription's marks it carries: the snapshot
  `parent.subscription_details.metadata` (`subscription_details.metadata` in API versions
  2023-08 to 2025-02), else its subscription lines' `metadata` (Stripe's lines carry the
  subscription's, an emulator's the item's). It is tied to a quote only by the snapshot,
  and only when the quote caused it (`billing_reason` `subscription_create` or
  `subscription_update`): a cycle's, a manual or a threshold invoice is not the quote's.
"""

from __future__ import annotations

from collections.abc import Mapping

from finsync.connectors.stripe.delivery import Delivery, snapshot
from finsync.connectors.stripe.objects import Obj, child
from finsync.domain.errors import MappingError

META_CONTRACT = "finsync_contract_id"
META_QUOTE = "finsync_quote_id"
META_VERSION = "finsync_cpq_version"
META_LINE = "finsync_line_id"
META_CUSTOMER = "finsync_customer_id"
META_CUSTOMER_VERSION = "finsync_customer_version"
MARK_MAX = 255  # characters of a mark read back (the hub's id columns)

CONTRACT, CUSTOMER = "subscription", "customer"  # the Stripe objects that carry identities
_IDENTITY = {CONTRACT: META_CONTRACT, CUSTOMER: META_CUSTOMER}
_CAUSED_INVOICES = frozenset({"subscription_create", "subscription_update"})


# Every mark: the only metadata the local mirror keeps (the rest may be personal).
MARKS = (META_CONTRACT, META_QUOTE, META_VERSION, META_LINE, META_CUSTOMER,
         META_CUSTOMER_VERSION)


def kept(meta: Obj) -> dict[str, object]:
    """finsync's marks of a metadata hash, nothing else (`mirror`)."""
    return {k: meta[k] for k in MARKS if k in meta}


def mark(meta: Obj, key: str, path: str) -> str | None:
    """The mark `key` of a metadata hash, None when absent or empty (Stripe's way of
    removing a key is setting it to "")."""
    value = meta.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MARK_MAX or value != value.strip():
        raise MappingError(f"{path}.metadata.{key} must be an id of at most {MARK_MAX} "
                           "characters", code="invalid_field")
    return value


def previous_attributes(event: Obj) -> Obj:
    return child(child(event, "data"), "previous_attributes")


def identity(obj: Obj, previous: Obj) -> str | None:
    """The canonical id a subscription or customer is marked with (see the rules)."""
    key = _IDENTITY.get(str(obj.get("object")))
    if key is None:
        return None
    path = str(obj.get("object"))
    own = mark(child(obj, "metadata"), key, path)
    return own if own is not None else mark(child(previous, "metadata"), key,
                                            f"{path}.previous_attributes")


def aggregate_key(event: Obj, current: Obj | None) -> str | None:
    """What the poller numbers an event's versions by: a marked customer's canonical id
    (`finsync:customer:<id>`), else the object's Stripe id (None without one)."""
    obj = current if current is not None else snapshot(event)
    marked = identity(obj, previous_attributes(event)) if obj.get("object") == CUSTOMER \
        else None
    if marked is not None:
        return f"finsync:{CUSTOMER}:{marked}"
    found = obj.get("id")
    return found if isinstance(found, str) and found else None


def caused_quote(d: Delivery) -> str | None:
    """The quote whose order made this subscription event (see the rules), else None."""
    sub = d.object
    own = snapshot(d.event)
    meta = child(own if child(own, "metadata") else sub, "metadata")
    quote = mark(meta, META_QUOTE, "subscription")
    if quote is None or identity(sub, {}) is None:
        return None
    if d.type == "customer.subscription.created":
        return quote
    if d.type != "customer.subscription.updated":
        return None
    previous = previous_attributes(d.event)
    before = child(previous, "metadata")
    if META_QUOTE not in before or before.get(META_QUOTE) == quote:
        return None  # the quote mark did not move in this change
    if _schedules_cancellation(sub, previous):
        return None
    return quote


def _schedules_cancellation(sub: Obj, previous: Obj) -> bool:
    return ("cancel_at_period_end" in previous and sub.get("cancel_at_period_end") is True) \
        or ("cancel_at" in previous and sub.get("cancel_at") is not None)


def invoice_snapshot(inv: Obj) -> Obj:
    """The subscription's metadata as the invoice holds it (Stripe's immutable snapshot)."""
    details = child(child(inv, "parent"), "subscription_details")
    if not details:
        details = child(inv, "subscription_details")
    return child(details, "metadata")


def invoice_contract(inv: Obj) -> str | None:
    """The canonical contract an invoice bills (see the rules); None when unmarked, or when
    its lines name two contracts."""
    own = mark(invoice_snapshot(inv), META_CONTRACT, "invoice.subscription_details")
    if own is not None:
        return own
    data = child(inv, "lines").get("data")
    named = {mark(child(line, "metadata"), META_CONTRACT, "invoice.lines")
             for line in data if isinstance(line, Mapping)} if isinstance(data, list) else set()
    named.discard(None)
    return named.pop() if len(named) == 1 else None


def invoice_quote(inv: Obj) -> str | None:
    """The quote that caused an invoice (see the rules), else None."""
    if inv.get("billing_reason") not in _CAUSED_INVOICES:
        return None
    return mark(invoice_snapshot(inv), META_QUOTE, "invoice.subscription_details")


def line_id(meta: Obj, path: str) -> str | None:
    """The contract line an item (or an emulator's invoice line) is marked with."""
    return mark(meta, META_LINE, path)
