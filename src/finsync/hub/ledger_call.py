"""One call of the ERP posting buffer (`hub.buffer`): the postings of one legal entity it
carries, and how it is made.

Rules:
- A call carries the postings of one legal entity, up to the batch size, in delivery
  order; an event this ERP takes that is no posting goes alone.
- A transient error of the call itself is every posting's outcome. Any other error of a
  call of several postings may come from one of them (a value the ERP's database refuses),
  so each is posted again alone and gets its own; `made` counts those calls.
- Each call is made for the deliveries it carries (`connectors.calls.delivering`): a daily
  summary's members, not the summary's own key.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

from finsync.connectors.calls import Subject, delivering
from finsync.connectors.ports import BatchLedgerPort, LedgerPort, Posting, Receipt
from finsync.domain.envelope import Envelope
from finsync.domain.errors import ExceptionClass, PermanentError, TransientError
from finsync.hub.delivery import Attempt, DeliveryWorker
from finsync.hub.pipeline import describe
from finsync.hub.summary_posting import Item, Planned
from finsync.hub.target import Target
from finsync.storage import outbox

log = logging.getLogger(__name__)

Lane = str | None


@dataclass(slots=True)
class LedgerCall:
    lane: Lane
    entity: str
    planned: list[Planned] = field(default_factory=list)
    alone: tuple[outbox.Delivery, Envelope] | None = None  # an event that is no posting
    made: int = 1  # ERP calls it took: more when a failed call was made again one by one

    def delivery_ids(self) -> list[int]:
        if self.alone is not None:
            return [self.alone[0].id]
        return [i.delivery.id for p in self.planned for i in p.members]


def calls_of(planned: Sequence[Planned], batch: int) -> list[LedgerCall]:
    """Calls of one legal entity each, up to `batch` postings, in delivery order."""
    open_calls: dict[str, LedgerCall] = {}
    calls: list[LedgerCall] = []
    for p in sorted(planned, key=lambda p: p.members[0].delivery.id):
        entity = p.posting.event.document.legal_entity
        call = open_calls.get(entity)
        if call is None or len(call.planned) >= batch:
            call = open_calls[entity] = LedgerCall(p.members[0].delivery.lane, entity)
            calls.append(call)
        call.planned.append(p)
    return calls


class LedgerCaller:
    """Makes a buffer's calls to one ERP and turns their outcomes into attempts."""

    def __init__(self, target: Target, port: LedgerPort, worker: DeliveryWorker) -> None:
        self.system = target.system
        self._target, self._port, self._worker = target, port, worker
        # Decided once: a Protocol check tests every member, too dear for each call.
        self.batched = isinstance(port, BatchLedgerPort)

    @property
    def max_batch(self) -> int:
        return cast(BatchLedgerPort, self._port).max_batch if self.batched else 1

    def answer(self, call: LedgerCall) -> list[Receipt | Exception]:
        """One ERP call's outcomes, a posting's each."""
        postings = [p.posting for p in call.planned]
        try:
            with delivering(_subjects(call.planned)):
                outcomes = self._post(postings)
        except TransientError as exc:
            return [exc] * len(postings)
        except Exception as exc:
            if len(postings) == 1:
                return [exc]
            log.warning("%s: a call of %d postings failed (%s); posting them one by one",
                        self.system, len(postings), describe(exc))
            call.made += len(postings)
            return [self._post_alone(p) for p in call.planned]
        if len(outcomes) != len(postings):
            error = PermanentError(f"{self.system} answered {len(outcomes)} outcomes for "
                                   f"{len(postings)} postings",
                                   exception_class=ExceptionClass.INTERNAL_ERROR)
            return [error] * len(postings)
        return outcomes

    def attempt(self, item: Item, planned: Planned, outcome: Receipt | Exception) -> Attempt:
        if isinstance(outcome, Receipt):
            return Attempt(item.delivery, item.env, item.event, planned.receipt_for(outcome))
        return Attempt(item.delivery, item.env, item.event,
                       self._worker.outcome_of(item.delivery, outcome))

    def _post(self, postings: Sequence[Posting]) -> list[Receipt | Exception]:
        if self.batched:
            return list(cast(BatchLedgerPort, self._port).post_batch(postings))
        return [self._target.deliver(p.event, p.ctx) for p in postings]

    def _post_alone(self, planned: Planned) -> Receipt | Exception:
        try:
            with delivering(_subjects((planned,))):
                (outcome,) = self._post([planned.posting])
        except Exception as exc:
            return exc
        return outcome


def _subjects(planned: Sequence[Planned]) -> list[Subject]:
    """The deliveries a call carries: each member of each planned posting."""
    return [Subject(item.env.correlation_id, item.delivery.delivery_key)
            for p in planned for item in p.members]
