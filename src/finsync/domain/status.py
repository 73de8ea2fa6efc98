"""The status sets of the hub's records (raw events, events, deliveries, exceptions, triage
actions), each named once: the hub stores them by value and its read API reports them."""

from __future__ import annotations

from enum import StrEnum


class RawStatus(StrEnum):
    """A raw event: stored, mapped into canonical events, or rejected (kept, with why)."""

    RECEIVED = "received"
    MAPPED = "mapped"
    REJECTED = "rejected"


class EventStatus(StrEnum):
    """A canonical event: applied, waiting for an earlier version (overdue once the bounded
    wait is over), or refused (kept for the record)."""

    ACCEPTED = "accepted"
    PARKED = "parked"
    OVERDUE = "overdue"
    REJECTED = "rejected"


class DeliveryStatus(StrEnum):
    """An outbox delivery: due, leased to a worker, done, refused (`failed`) or out of
    retries (`dead`); both of the last wait for a person."""

    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    DONE = "done"
    FAILED = "failed"
    DEAD = "dead"


UNFINISHED = (DeliveryStatus.PENDING, DeliveryStatus.IN_FLIGHT, DeliveryStatus.FAILED,
              DeliveryStatus.DEAD)


class ExceptionStatus(StrEnum):
    """An exception in finance's queue; `retrying` is a transient cause the hub retries by
    itself, `awaiting_approval` a correction that needs a second person."""

    OPEN = "open"
    RETRYING = "retrying"
    AWAITING_APPROVAL = "awaiting_approval"
    RESOLVED = "resolved"
    IGNORED = "ignored"


UNRESOLVED = (ExceptionStatus.OPEN, ExceptionStatus.RETRYING, ExceptionStatus.AWAITING_APPROVAL)


class ActionStatus(StrEnum):
    """A triage action: carried out, waiting for a second person, refused by them, or not
    decided in time."""

    DONE = "done"
    PENDING_APPROVAL = "pending_approval"
    REJECTED = "rejected"
    EXPIRED = "expired"


class OrderState(StrEnum):
    """A CPQ version's order to billing (`hub.order_desk`): held before billing (a product
    the catalogue map cannot translate), sent, refused by billing (its code and message
    kept; sent again when finance retries it), failed (the last attempt to send it failed
    otherwise: billing unavailable, a defect; its class and message kept, billing's outcome
    unknown until the delivery is retried), applied (billing's contract agrees with it) or
    in mismatch (it differs: `master_data_mismatch`). Applied and mismatch are settled:
    billing changed; no failure of a later attempt moves them back."""

    HELD = "held"
    SENT = "sent"
    REFUSED = "refused"
    FAILED = "failed"
    APPLIED = "applied"
    MISMATCH = "mismatch"


SETTLED_ORDER_STATES = (OrderState.APPLIED, OrderState.MISMATCH)
