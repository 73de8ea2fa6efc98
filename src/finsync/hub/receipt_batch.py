"""Recording a batch of delivery receipts a set at a time.

Rules:
- A receipt is *plain* when its delivery has no unresolved exception to resolve and none of
  its cross-references is in question (each is recorded already with the same id, or new,
  and no other receipt of the batch names the same canonical id and system, or the same
  external id). Plain receipts are recorded exactly as `DeliveryWorker._record_success`
  records them (delivery done, cross-references, milestone), with one statement per table
  for all of them. Every other outcome is recorded by the worker, alone in its savepoint.
- A delivery whose lease was lost (another worker took it over) is left to that worker: no
  cross-reference nor milestone is written for it here.
- Look-ups are set-based and made before any write. If a write still fails, the worker's
  transaction fails and it records the batch again one outcome per transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Connection

from finsync.connectors.ports import Receipt
from finsync.domain.envelope import Envelope
from finsync.domain.fingerprint import plain
from finsync.hub.target import Target
from finsync.storage import cross_ref, exception_log, jsonutil, milestone_log, outbox
from finsync.storage.cross_ref import Link

if TYPE_CHECKING:
    from finsync.hub.delivery import Attempt


def exception_fingerprint(delivery_key: str) -> str:
    """The fingerprint of a delivery's exception (`hub.delivery` opens it)."""
    return f"delivery:{delivery_key}"


class ReceiptBatch:
    """One batch's plain receipts, inside the worker's recording transaction."""

    def __init__(self, conn: Connection, owner: str, at: datetime,
                 targets: Mapping[str, Target]) -> None:
        self._conn, self._owner, self._at, self._targets = conn, owner, at, targets
        self._new_links: dict[int, list[Link]] = {}  # delivery id -> links to insert
        self._pending: list[tuple[Attempt, Envelope, Receipt]] = []

    def look_up(self, attempts: Sequence[Attempt]) -> list[bool]:
        """Which attempts are plain receipts (two look-ups for the whole batch)."""
        links: list[Link] = []
        link_owner: list[int] = []  # the attempt index of each link
        receipts: list[int] = []
        for index, attempt in enumerate(attempts):
            if not isinstance(attempt.outcome, Receipt) or not isinstance(attempt.env, Envelope):
                continue
            receipts.append(index)
            for ref in attempt.outcome.references:
                links.append((ref.canonical_id, ref.object_type, attempt.delivery.target,
                              ref.external_id, attempt.env.event_id))
                link_owner.append(index)
        alone, new = cross_ref.conflicts(self._conn, links)
        to_resolve = exception_log.unresolved_among(
            self._conn, {exception_fingerprint(attempts[i].delivery.delivery_key)
                         for i in receipts})
        chosen = [False] * len(attempts)
        for index in receipts:
            fingerprint = exception_fingerprint(attempts[index].delivery.delivery_key)
            chosen[index] = fingerprint not in to_resolve
        for number, link in enumerate(links):
            index = link_owner[number]
            if number in alone:
                chosen[index] = False
            elif number in new:
                self._new_links.setdefault(attempts[index].delivery.id, []).append(link)
        return chosen

    def take(self, attempt: Attempt) -> None:
        """A plain receipt (as `look_up` found it), written by the next `flush`."""
        assert isinstance(attempt.outcome, Receipt) and isinstance(attempt.env, Envelope)
        self._pending.append((attempt, attempt.env, attempt.outcome))

    def flush(self) -> None:
        """Deliveries done (those still leased to us), then their cross-references and
        milestones: one statement each."""
        if not self._pending:
            return
        conn, at = self._conn, self._at
        results = {a.delivery.id: jsonutil.dumps(plain(receipt))
                   for a, _, receipt in self._pending}
        done = outbox.complete_many(conn, results, self._owner, at)
        ours = [(a, env) for a, env, _ in self._pending if a.delivery.id in done]
        cross_ref.insert_many(conn, [link for a, _ in ours
                                     for link in self._new_links.get(a.delivery.id, ())], at)
        milestones: list[milestone_log.Milestone] = []
        for attempt, env in ours:
            milestone = self._targets[attempt.delivery.target].milestone(env.type)
            if milestone:
                milestones.append((env.correlation_id, milestone, env.event_id,
                                   attempt.delivery.target))
        milestone_log.record_many(conn, milestones, at)
        self._pending = []
