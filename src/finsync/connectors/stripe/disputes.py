"""Disputes (chargebacks) as canonical documents.

Stripe tells a dispute's life in five event types, each carrying the dispute as it is then:
`charge.dispute.created`, `.updated`, `.funds_withdrawn`, `.funds_reinstated` and `.closed`.
The money is in the dispute's `balance_transactions`: each is one movement of the Stripe
balance (`amount` the disputed money, negative when withdrawn; `fee` the dispute fee,
negative when given back; `net = amount - fee`), created once and never changed.

Rules:
- Stripe gives a dispute no version, and its events arrive in any order and more than once.
  So nothing here is a version of the dispute: each lifecycle step is its own document,
  issued once, made only from what never changes once Stripe has said it:
  - `charge.dispute.created` opens the dispute (`DisputeOpened`, keyed by the dispute);
  - every balance transaction, in whichever dispute event shows it first, is one
    `DisputeFundsWithdrawn` or `DisputeFundsReinstated` (keyed by the transaction: every
    event that shows it again gives the same document, which the hub counts a duplicate);
  - `charge.dispute.closed` closes it (`DisputeClosed`, keyed by the dispute), with what
    the balance transactions it shows left unrecovered. Stripe moves the money before it
    reports the closure, so the closed dispute shows every transaction.
- The disputed payment is the dispute's PaymentIntent, else its Charge (as `payments` names
  a payment). The money is the balance transactions' (the Stripe balance's currency); the
  amount disputed is the dispute's own (the payment's currency).
- A balance transaction whose `net` is not `amount - fee` is refused (`totals_mismatch`);
  one that moves nothing is no document. A closed status finsync does not know is refused.
"""

from __future__ import annotations

from collections.abc import Mapping

from finsync.connectors.stripe.delivery import Delivery, Handler, Planner
from finsync.connectors.stripe.objects import (
    Obj,
    SourceSettings,
    built,
    child,
    currency_of,
    day,
    id_of,
    integer,
    minor,
    ref,
    refs,
    text,
)
from finsync.domain.dispute import (
    Dispute,
    DisputeClosure,
    DisputeFunds,
    DisputeOutcome,
    DisputeStep,
)
from finsync.domain.errors import MappingError
from finsync.domain.events import (
    AnyEvent,
    DisputeClosed,
    DisputeFundsReinstated,
    DisputeFundsWithdrawn,
    DisputeOpened,
)
from finsync.domain.money import Money, total

PATH = "dispute"

# A closed dispute's status -> its outcome. `charge_refunded` is the older API's closed
# inquiry whose payment was refunded.
OUTCOMES = {"won": DisputeOutcome.WON, "lost": DisputeOutcome.LOST,
            "warning_closed": DisputeOutcome.INQUIRY_CLOSED,
            "charge_refunded": DisputeOutcome.INQUIRY_CLOSED,
            "prevented": DisputeOutcome.PREVENTED}


def payment_of(dispute: Obj) -> str:
    """The disputed payment's canonical id: its PaymentIntent, else its Charge."""
    return id_of(dispute.get("payment_intent")) or ref(dispute, "charge", PATH)


def opened(dispute: Obj, settings: SourceSettings) -> Dispute:
    dispute_id = text(dispute, "id", PATH)
    card = child(child(dispute, "payment_method_details"), "card")
    warning = str(dispute.get("status", "")).startswith("warning_")
    inquiry = warning or card.get("case_type") == "inquiry"
    return built(PATH, lambda: Dispute(
        dispute_id, payment_of(dispute), settings.legal_entity,
        minor(dispute, "amount", currency_of(dispute, PATH), PATH),
        day(dispute.get("created"), f"{PATH}.created"), str(dispute.get("reason") or "general"),
        inquiry, refs(dispute_id)))


def _transactions(dispute: Obj) -> list[Obj]:
    value = dispute.get("balance_transactions") or []
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise MappingError(f"{PATH}.balance_transactions must be a list of balance "
                           "transactions", code="invalid_field")
    return value


def funds(dispute: Obj, settings: SourceSettings) -> list[DisputeFunds]:
    """Every balance transaction of the dispute that moved money, as it was booked."""
    found = (_funds(dispute, txn, f"{PATH}.balance_transactions[{n}]", settings)
             for n, txn in enumerate(_transactions(dispute)))
    return [f for f in found if f is not None]


def _funds(dispute: Obj, txn: Obj, path: str, settings: SourceSettings) -> DisputeFunds | None:
    currency = currency_of(txn, path)
    amount, fee = minor(txn, "amount", currency, path), minor(txn, "fee", currency, path)
    if integer(txn, "net", path) != integer(txn, "amount", path) - integer(txn, "fee", path):
        raise MappingError(f"{path}: net is not amount - fee", code="totals_mismatch")
    if amount.is_zero and fee.is_zero:
        return None
    txn_id = text(txn, "id", path)
    return built(path, lambda: DisputeFunds(
        txn_id, text(dispute, "id", PATH), payment_of(dispute), settings.legal_entity, amount,
        fee, day(txn.get("created"), f"{path}.created"), refs(txn_id)))


def closure(dispute: Obj, closed_at: int, settings: SourceSettings) -> DisputeClosure:
    dispute_id, status = text(dispute, "id", PATH), text(dispute, "status", PATH)
    outcome = OUTCOMES.get(status)
    if outcome is None:
        raise MappingError(f"{PATH}.status {status!r} is not a closed dispute's (one of: "
                           f"{', '.join(OUTCOMES)})", code="invalid_field")
    moved = funds(dispute, settings)
    currencies = {f.amount.currency for f in moved} or {currency_of(dispute, PATH)}
    if len(currencies) != 1:
        raise MappingError(f"{PATH}.balance_transactions are in {sorted(currencies)}",
                           code="currency_mismatch")
    (currency,) = currencies
    steps = tuple(DisputeStep(f.id, f.amount, f.booked_on) for f in moved)
    unrecovered: Money = -total([s.amount for s in steps], currency)
    return built(PATH, lambda: DisputeClosure(
        dispute_id, payment_of(dispute), settings.legal_entity, outcome, unrecovered,
        day(closed_at, "event.created"), steps, refs(dispute_id)))


def _moved(found: DisputeFunds) -> AnyEvent:
    return DisputeFundsWithdrawn(found) if found.withdrawn else DisputeFundsReinstated(found)


def _created(d: Delivery, settings: SourceSettings) -> list[AnyEvent]:
    return [DisputeOpened(opened(d.object, settings)),
            *(_moved(f) for f in funds(d.object, settings))]


def _moves(d: Delivery, settings: SourceSettings) -> list[AnyEvent]:
    return [_moved(f) for f in funds(d.object, settings)]


def _closed(d: Delivery, settings: SourceSettings) -> list[AnyEvent]:
    return [DisputeClosed(closure(d.object, d.created, settings)),
            *(_moved(f) for f in funds(d.object, settings))]


IGNORED: frozenset[str] = frozenset()
UNSUPPORTED: frozenset[str] = frozenset()
RELATED: dict[str, Planner] = {}
HANDLERS: dict[str, Handler] = {
    "charge.dispute.created": _created,
    # Any event may be the first to show a balance transaction (webhooks come in any
    # order, and one may be lost): each gives the funds it shows.
    "charge.dispute.updated": _moves,
    "charge.dispute.funds_withdrawn": _moves,
    "charge.dispute.funds_reinstated": _moves,
    "charge.dispute.closed": _closed,
}
