"""Stripe events to canonical draft envelopes (pure: the same raw body gives the same drafts).

A raw body is a Stripe event or the poller's delivery of one (`delivery`). The handlers live
with the documents they build, one module per area (`contracts`, `documents`, `payments`,
`disputes`), each exporting `HANDLERS`, the types it acknowledges on purpose (`IGNORED`),
the types with a financial effect it cannot map yet (`UNSUPPORTED`) and what its handlers
need fetched beside an event (`RELATED`).

Rules:
- Every envelope's `source_event_id` is the Stripe event id (a second envelope from the same
  event adds `/<aggregate type>:<aggregate id>`, e.g. `/payment:pi_1`), so the webhook copy
  and the polled copy of one event are one event to the hub's de-duplication. It occurred
  at the event's `created`.
- A handler turns one Stripe event into typed canonical events; `translate` puts each in its
  draft envelope. The aggregate is the event's document, at version 1 for documents issued
  once and at the delivery's sequenced version for customers and subscriptions.
- Customers and subscriptions are versioned aggregates. Stripe gives no per-object counter,
  so their versions are assigned by the poller, which reads `/v1/events` oldest first
  (`version` in the delivery); a webhook copy of such an event is acknowledged and maps to
  nothing (its sequenced copy follows). Version 1 of a subscription is `ContractCreated`
  whatever the event (the first state finsync saw); later versions are `ContractAmended`,
  or `ContractCancelled` for `customer.subscription.deleted`.
- An event whose object is partial (a list page with `has_more`, a thin event, a refund
  without its charge) is mapped only from a delivery that carries the fetched object; so is
  one whose handler needs something beside it (a payment's invoice payments).
- Older API shapes are lifted to the current one before anything reads them (`upcast`).
- The correlation id is the commercial thread of the event's object; a payment, refund or
  declined attempt joins the thread of the invoice it was for (`payments.paid_invoice`).
  The thread of a subscription event a quote caused, and of an invoice it caused, is that
  quote (`marks.caused_quote`, `marks.invoice_quote`): the commercial layer's correlation
  id, so the hub's version check meets billing's contract event. Customers and
  subscriptions the commercial layer marked are mapped in its canonical ids (`contracts`),
  a marked customer's versions counted per canonical id (`marks.aggregate_key`).
- Types with no financial effect are acknowledged and ignored (`IGNORED`); a type that has
  one finsync cannot map (`credit_note.voided`, …) or does not know is a `MappingError`: the raw
  event is kept and finance sees an exception. The error names the Stripe object the event
  is about (`subject_of`: `"invoice:in_1"`), so the hub opens one exception per object,
  whatever the number of copies (webhook, poller, resends, other events on it).
"""

from __future__ import annotations

from collections.abc import Mapping

from finsync.connectors.stripe import (
    contracts,
    disputes,
    documents,
    marks,
    objects,
    payments,
    taxes,
    upcast,
)
from finsync.connectors.stripe.delivery import (
    CURRENT,
    Delivery,
    Fetch,
    Handler,
    Planner,
    fetch_target,
    parse,
    snapshot,
)
from finsync.connectors.stripe.objects import Obj, SourceSettings
from finsync.domain.aggregate import AggregateRef
from finsync.domain.envelope import DraftEnvelope
from finsync.domain.errors import DomainError, MappingError
from finsync.domain.events import AnyEvent

AREAS = (contracts, documents, payments, disputes)
VERSIONED = contracts.VERSIONED

# Acknowledged on purpose: they change nothing in the books (drafts, attempts, catalogue,
# payment methods, notifications), or another event carries their effect (each area's
# `IGNORED` says which).
IGNORED_PREFIXES = ("product.", "plan.", "price.", "coupon.", "promotion_code.", "tax_rate.",
                    "payment_method.", "customer.source.", "customer.discount.",
                    "customer.tax_id.", "setup_intent.", "source.", "invoiceitem.",
                    "subscription_schedule.", "balance.", "payout.", "mandate.")
IGNORED: frozenset[str] = frozenset().union(*(area.IGNORED for area in AREAS))
UNSUPPORTED: frozenset[str] = frozenset().union(*(area.UNSUPPORTED for area in AREAS))
_HANDLERS: Mapping[str, Handler] = {t: h for area in AREAS for t, h in area.HANDLERS.items()}
# Every area's planners of an event type (two areas may each need something beside it).
_RELATED: Mapping[str, tuple[Planner, ...]] = {
    t: tuple(area.RELATED[t] for area in AREAS if t in area.RELATED)
    for area in AREAS for t in area.RELATED}


def fetch_plan(event: Obj) -> tuple[Fetch, ...]:
    """Everything the poller fetches before `event` can be mapped: its own object when the
    event's copy is partial, and what the event type's handlers need beside it."""
    own = fetch_target(event)
    plan: tuple[Fetch, ...] = () if own is None else (Fetch(CURRENT, *own),)
    for planner in _RELATED.get(str(event.get("type", "")), ()):
        plan += tuple(f for f in planner(event) if f not in plan)
    return plan


def fetch_after(current: Obj) -> tuple[Fetch, ...]:
    """What the poller fetches once it has the event's whole object (`current`): the tax
    rates of a document whose event held only part of its lines."""
    return taxes.rate_fetches(current)


def translate(settings: SourceSettings, source: str, body: bytes) -> list[DraftEnvelope]:
    """The canonical draft envelopes of one raw body of a Stripe source (older API shapes
    lifted to the current one first, `upcast`). A body that does not map is a `MappingError`
    naming the Stripe object it is about (`subject_of`)."""
    delivery = parse(body)
    try:
        return _translate(settings, source, upcast.delivery(delivery))
    except MappingError as exc:
        raise exc.about(subject_of(delivery)) from exc.__cause__
    except DomainError as exc:  # a broken rule in the payload is its mapping error
        raise MappingError(str(exc), code=exc.code, subject=subject_of(delivery)) from exc


def subject_of(delivery: Delivery) -> str | None:
    """`"<object type>:<id>"` of the Stripe object an event is about, when it says."""
    try:
        obj = delivery.object
    except MappingError:
        return None
    kind, object_id = obj.get("object"), obj.get("id")
    if isinstance(kind, str) and kind and isinstance(object_id, str) and object_id:
        return f"{kind}:{object_id}"
    return None


def _translate(settings: SourceSettings, source: str,
               delivery: Delivery) -> list[DraftEnvelope]:
    kind = delivery.type
    if kind in IGNORED or kind.startswith(IGNORED_PREFIXES):
        return []
    if kind in VERSIONED and delivery.version is None:
        return []  # the poller's sequenced copy carries it
    mine = settings.for_event(delivery.event)  # a Connect account's event: its entity
    if not _carries(delivery, documents.needed(fetch_plan(delivery.event), delivery, mine)):
        return []  # partial: the poller's copy carries what it fetched
    handler = _HANDLERS.get(kind)
    if handler is None:
        raise MappingError(f"Stripe event type {kind!r} has a financial effect finsync does "
                           "not map" if kind in UNSUPPORTED else
                           f"unknown Stripe event type {kind!r}", code="unsupported_event")
    version = contracts.version(delivery) if kind in VERSIONED else ISSUED_ONCE
    return [draft(source, delivery, event, version, index)
            for index, event in enumerate(handler(delivery, mine))]


def _carries(delivery: Delivery, plan: tuple[Fetch, ...]) -> bool:
    return all(delivery.current is not None if f.key == CURRENT else f.key in delivery.related
               for f in plan)


# The aggregate version of a document issued once (invoices, credit memos, payments, refunds).
ISSUED_ONCE = 1

def correlation_of(obj: Obj) -> str:
    """The commercial thread: the quote that caused an invoice (`marks.invoice_quote`), else
    the subscription an object belongs to, else the object."""
    if obj.get("object") == "invoice" and (quote := marks.invoice_quote(obj)) is not None:
        return quote
    if obj.get("object") == "subscription":
        return f"stripe:{obj.get('id')}"
    if obj.get("object") == "dispute":  # the disputed payment's thread
        return f"stripe:{disputes.payment_of(obj)}"
    sub = documents.invoice_subscription(obj) if obj.get("object") == "invoice" else None
    return f"stripe:{sub or obj.get('id') or 'unknown'}"


def thread_of(event: Obj) -> str:
    """The correlation id the hub will give `event`, for the poller's call log before
    anything is mapped (from the event's snapshot: a thin event names only its object); an
    object whose mark the mapping will refuse is filed under its Stripe thread."""
    obj = snapshot(event)
    try:
        if event.get("type") in contracts.SUBSCRIPTION_EVENTS:
            caused = marks.caused_quote(Delivery(event, None, None))
            if caused is not None:
                return caused
        return correlation_of(obj)
    except MappingError:
        return f"stripe:{obj.get('id') or 'unknown'}"


def version_key(event: Obj, current: Obj | None) -> str | None:
    """What the poller numbers a versioned event by (`marks.aggregate_key`); an object
    whose mark the mapping will refuse by its Stripe id (its events map to nothing)."""
    try:
        return marks.aggregate_key(event, current)
    except MappingError:
        obj = current if current is not None else snapshot(event)
        found = obj.get("id")
        return found if isinstance(found, str) and found else None


def draft(source: str, d: Delivery, event: AnyEvent, version: int,
          index: int) -> DraftEnvelope:
    """Event number `index` (from 0) of one Stripe event in its envelope, its aggregate at
    `version`."""
    own = event.aggregate()
    suffix = "" if index == 0 else f"/{own.type}:{own.id}"
    subject = payments.paid_invoice(d) or d.object  # a payment joins its invoice's thread
    caused = marks.caused_quote(d) if d.type in contracts.SUBSCRIPTION_EVENTS else None
    return DraftEnvelope(
        event, source, d.id + suffix, objects.instant(d.created, "event.created"),
        caused or correlation_of(subject),
        aggregate=AggregateRef(event.aggregate_type, own.id, version))
