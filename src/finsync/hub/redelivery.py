"""Deliveries their targets answered already, found a set at a time.

A delivery sent again (every delivery of a replayed event; a retry whose outcome was lost)
mostly reaches a target that applied it already and answers its key with the first receipt.
Asking for that one delivery at a time costs a call, a transaction and a call-log row each.

Rules:
- Before calling targets one delivery at a time, the worker asks each target that can tell
  in a set (`hub.target.AnsweringTarget`) which of the batch's deliveries it answered
  already with this very document, in one read per target. Those take the receipt it gives
  and are recorded like any receipt; every other delivery is called as before, so
  refusals, retries and exceptions are decided by the call exactly as they were.
- Only deliveries the call would be made for: an event that reads, of a type the target
  takes.
- The look-up only saves calls: one that fails leaves every delivery to its call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

from finsync.connectors.ports import DeliveryContext, Receipt
from finsync.domain.envelope import Envelope
from finsync.domain.events import AnyEvent
from finsync.hub.pipeline import describe
from finsync.hub.target import AnsweringTarget, Target
from finsync.storage.event_log import UnreadableEvent
from finsync.storage.outbox import Delivery

log = logging.getLogger(__name__)

ContextOf = Callable[[Delivery, Envelope], DeliveryContext]


def answered(targets: Mapping[str, Target], claimed: Sequence[Delivery],
             envelopes: Mapping[str, Envelope | UnreadableEvent],
             context_of: ContextOf) -> dict[int, Receipt]:
    """Per delivery id, the receipt its target answered already (`context_of`: a
    delivery's context, as its call gets it)."""
    # A Protocol's isinstance tests each of its members: once per target, not per delivery.
    answering: dict[str, AnsweringTarget] = {}
    for name in {d.target for d in claimed}:
        target = targets.get(name)
        if isinstance(target, AnsweringTarget):
            answering[name] = target
    asked: dict[str, list[tuple[Delivery, AnyEvent, DeliveryContext]]] = {}
    for delivery in claimed:
        env = envelopes[delivery.event_id]
        found_target = answering.get(delivery.target)
        if (found_target is not None and isinstance(env, Envelope)
                and found_target.handles(env.type)):
            asked.setdefault(delivery.target, []).append(
                (delivery, env.event, context_of(delivery, env)))
    found: dict[int, Receipt] = {}
    for name, items in asked.items():
        try:
            receipts = answering[name].answered([(event, ctx) for _, event, ctx in items])
        except Exception as exc:
            log.warning("%s could not tell which deliveries it answered already (%s); each "
                        "is called instead", name, describe(exc))
            continue
        found.update((d.id, receipts[d.delivery_key]) for d, _, _ in items
                     if d.delivery_key in receipts)
    return found
