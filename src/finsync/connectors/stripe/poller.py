"""Catch-up polling of Stripe's `/v1/events`: every event reaches the hub, in order, once
in effect.

Rules:
- Events are read oldest first from a stored cursor, page by page. For each page the poller
  numbers the events of versioned objects (customers, subscriptions), fetches the current
  object of any event whose own is partial (fetch-on-event) and then what that whole object
  names that the event's copy did not (the tax rates of an invoice's other lines), hands
  the page to the hub as deliveries (`delivery.DELIVERY`) and only then moves the cursor. A
  crash in between sends the page again: the hub counts the copies as duplicates of the
  same Stripe event ids, and the versions are the ones already given.
- Once the hub committed a page, its objects go to the local mirror (`mirror`): each event's
  snapshot and everything fetched for it. A crash before the cursor moved repeats both;
  the mirror keeps the newest copy of each object whatever arrives twice.
- A webhook that never arrived is found here; one that did arrive is the same Stripe event
  id, so the hub de-duplicates the two copies.
- Run as a pump before each pipeline run, a poll that fails (Stripe down) is logged and
  retried at the next run: the cursor has not moved, Stripe keeps events for 30 days.
  `finsync stripe poll` raises the error instead.
- A poller of a Connect account (its client acting for the account) reads that account's
  events; each is delivered with the account in its `account` field, as Stripe's Connect
  webhooks carry it, so that it books into the account's legal entity.
- An object fetched for an event is fetched for that event's commercial thread: the call log
  files the fetch under the correlation id the hub will give the event (`mapping.
  thread_of` of the event's object; a thin event names only its own object).
- The versions of a customer or subscription are numbered by `mapping.version_key`: its
  Stripe id, or for a customer the commercial layer marked its canonical id, so a marked
  customer's versions count per canonical id (`marks`). Events are numbered after their
  objects are fetched (a thin event's identity is its fetched object's).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from finsync.connectors.calls import Subject, delivering
from finsync.connectors.ports import SourceEvent, SourcePage
from finsync.connectors.stripe import mapping
from finsync.connectors.stripe.delivery import CURRENT, delivery_body
from finsync.connectors.stripe.mirror import Mirror
from finsync.connectors.stripe.state import PollState
from finsync.domain.errors import ConnectorError

log = logging.getLogger(__name__)

Send = Callable[[Sequence[bytes]], object]


class EventSource(Protocol):
    def fetch(self, object_type: str, external_id: str) -> Mapping[str, object]: ...
    def events_after(self, cursor: str | None, limit: int) -> SourcePage: ...


@dataclass(frozen=True, slots=True)
class PollResult:
    events: int
    fetched: int
    pages: int
    cursor: str | None


class Poller:
    def __init__(self, client: EventSource, state: PollState, page_size: int = 100,
                 pages_max: int = 1000, mirror: Mirror | None = None,
                 account: str | None = None) -> None:
        if page_size <= 0 or pages_max <= 0:
            raise ValueError("page_size and pages_max must be positive")
        self._client, self._state, self._mirror = client, state, mirror
        self._page_size, self._pages_max = page_size, pages_max
        self.account = account
        self.last_error: ConnectorError | None = None

    def poll(self, send: Send) -> PollResult:
        """Send every event after the cursor; `send` returns only after the hub committed."""
        cursor = self._state.cursor()
        events = fetched = pages = 0
        for pages in range(1, self._pages_max + 1):  # noqa: B007 - reported below
            page = self._client.events_after(cursor, self._page_size)
            if not page.events:
                break
            bodies, fetched_now = self._deliveries(page.events)
            send(bodies)
            if self._mirror is not None:
                self._mirror.record(self._state.source, bodies)
            if page.cursor is not None:
                self._state.save_cursor(page.cursor)
            cursor = page.cursor
            events, fetched = events + len(bodies), fetched + fetched_now
            if not page.has_more:
                break
        return PollResult(events, fetched, pages, cursor)

    def pump(self, send: Send) -> int:
        """The hub's pump: poll, and on a connector failure log it and try next run."""
        try:
            result = self.poll(send)
        except ConnectorError as exc:
            self.last_error = exc
            log.warning("Stripe poll of %s failed, retried next run: %s",
                        self._state.source, exc)
            return 0
        self.last_error = None
        return result.events

    def _deliveries(self, events: Sequence[SourceEvent]) -> tuple[list[bytes], int]:
        fetched, found = 0, []
        for event in events:
            objects, count = self._fetched(event)
            found.append(objects)
            fetched += count
        # numbered by the identity the mapping gives the object it maps (the fetched one
        # when there is one): a marked object's versions count per canonical id
        keys = [(mapping.version_key(e.body, f.get(CURRENT)), e) for e, f in zip(
            events, found, strict=True) if e.type in mapping.VERSIONED]
        numbered = self._state.versions([(key, e.source_event_id) for key, e in keys
                                         if key is not None])
        bodies = []
        for event, objects in zip(events, found, strict=True):
            current = objects.pop(CURRENT, None)
            bodies.append(delivery_body(self._of_account(event.body), current,
                                        numbered.get(event.source_event_id), objects))
        return bodies, fetched

    def _fetched(self, event: SourceEvent) -> tuple[dict[str, Mapping[str, object]], int]:
        """What the mapping needs fetched for `event` (`mapping.fetch_plan`), and how many
        fetches that took."""
        plan = mapping.fetch_plan(event.body)
        if not plan:
            return {}, 0
        thread = mapping.thread_of(event.body)
        with delivering((Subject(thread),)):
            found: dict[str, Mapping[str, object]] = {
                f.key: dict(self._client.fetch(f.object_type, f.object_id)) for f in plan}
            after = tuple(f for f in mapping.fetch_after(found.get(CURRENT) or {})
                          if f.key not in found)
            found |= {f.key: dict(self._client.fetch(f.object_type, f.object_id))
                      for f in after}
        return found, len(plan) + len(after)

    def _of_account(self, event: Mapping[str, object]) -> Mapping[str, object]:
        if self.account is None or event.get("account"):
            return event
        return {**event, "account": self.account}
