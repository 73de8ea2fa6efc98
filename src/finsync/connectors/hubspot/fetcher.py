"""The fetcher: webhook-named objects read from HubSpot, stored as numbered snapshots.

Rules:
- A verified webhook's objects are queued (`note`, the intake's observer, after the webhook
  is committed). Before each pipeline run the hub pumps the fetcher: at most `batch_max`
  queued objects are read, oldest first.
- A line item or a quote is resolved to its deals, which are queued and read in the same
  run. A deal is read with its line items, companies and quotes; a company by itself.
  Every company of an approved deal is read too, so its customer account is upserted
  before (in the same batch as) the contract that names it.
- A deal not in an approved stage is acknowledged and dropped: nothing to order yet (its
  webhook is kept as received). An approved state is numbered (`state.FetchState.number`,
  by its fingerprint): the same content is the same version and the same envelope id, so
  the hub counts it as a duplicate; a stale read gets no number and is not sent. A state
  that cannot be mapped is sent unnumbered: the hub keeps it and opens its mapping_error.
- A read HubSpot refuses for good (`PermanentError`: a line item deleted during the read, a
  quote gone, a 400, an answer over its limit) is sent as a failed snapshot, unnumbered,
  naming the object and the error: the hub keeps it and opens its mapping_error. Only the
  queued object itself gone (404 on the deal, the company, the line item or the quote
  named by the webhook) leaves the queue with a log line: nothing of it is left to order.
- One object at a time: its states are numbered, handed to the hub (`send`, which returns
  after the commit), then it leaves the queue, before the next object is read. A failure
  to reach HubSpot (raised) thus leaves no version numbered but not sent behind it; a
  crash between the commit and the queue reads it again, as duplicates.
- Run as a pump, a failure to reach HubSpot is logged and retried at the next run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from finsync.connectors.calls import Subject, delivering
from finsync.connectors.hubspot import mapping, snapshot, webhook
from finsync.connectors.hubspot.client import ObjectGoneError
from finsync.connectors.hubspot.mapping import HubSpotSettings
from finsync.connectors.hubspot.snapshot import COMPANY, DEAL, LINE_ITEM, Obj, Snapshot
from finsync.connectors.hubspot.state import FetchState, ObjectRef
from finsync.domain.errors import ConnectorError, MappingError, PermanentError
from finsync.domain.limits import InputLimits

log = logging.getLogger(__name__)

Send = Callable[[Sequence[bytes]], object]
BATCH_MAX = 50


class CrmReader(Protocol):
    def deal(self, deal_id: str) -> Obj: ...
    def company(self, company_id: str) -> Obj: ...
    def quote(self, quote_id: str) -> Obj: ...
    def line_item(self, line_item_id: str) -> Obj: ...
    def line_items(self, ids: Sequence[str]) -> list[Obj]: ...


@dataclass(frozen=True, slots=True)
class FetchResult:
    read: int  # queued objects read
    sent: int  # snapshots handed to the hub
    skipped: int  # not approved, stale, duplicates of the latest version, gone


def note(state: FetchState, body: bytes, limits: InputLimits) -> int:
    """Queue the objects a stored webhook body names (the intake's observer); a body that
    is no webhook queues nothing (its stored copy maps to its own mapping_error)."""
    try:
        return state.note(webhook.named(webhook.events(body, limits)))
    except MappingError:
        return 0


class Fetcher:
    def __init__(self, client: CrmReader, state: FetchState, settings: HubSpotSettings,
                 clock: Callable[[], datetime], batch_max: int = BATCH_MAX) -> None:
        if batch_max <= 0:
            raise ValueError("batch_max must be positive")
        self._client = client
        self._state = state
        self._settings = settings
        self._clock = clock
        self._batch_max = batch_max
        self.last_error: ConnectorError | None = None

    def fetch(self, send: Send) -> FetchResult:
        """Read the queued objects and send their snapshots, object by object; raises
        `ConnectorError` (what was sent before stays sent and leaves the queue)."""
        queued = self._state.queued(self._batch_max)
        if not queued:
            return FetchResult(0, 0, 0)
        failed: list[bytes] = []
        resolvers = [ref for ref in queued if ref.object_type not in (DEAL, COMPANY)]
        refs = self._resolved(queued, failed)
        if failed:
            send(failed)
        sent = len(failed)
        skipped = 0
        for ref in refs:
            with delivering((Subject(f"hubspot-{ref.object_type}-{ref.object_id}"),)):
                found = self._snapshots(ref)
            if found:
                send(found)
            else:
                skipped += 1
            sent += len(found)
            self._state.done([ref])
        self._state.done(resolvers)
        return FetchResult(len(queued), sent, skipped)

    def waiting(self) -> int:
        """How many objects the webhooks named wait to be read."""
        return self._state.waiting()

    def pump(self, send: Send) -> int:
        """The hub's pump: fetch, and on a connector failure log it and try next run."""
        try:
            result = self.fetch(send)
        except ConnectorError as exc:
            self.last_error = exc
            log.warning("HubSpot fetch of %s failed, retried next run: %s",
                        self._state.source, exc)
            return 0
        self.last_error = None
        return result.sent

    def _resolved(self, queued: Sequence[ObjectRef], failed: list[bytes]) -> list[ObjectRef]:
        """Deals and companies to read: line items and quotes replaced by their deals (one
        whose read fails is added to `failed` as a failed snapshot)."""
        refs: list[ObjectRef] = []
        for ref in queued:
            if ref.object_type in (DEAL, COMPANY):
                refs.append(ref)
                continue
            try:
                owner = (self._client.line_item(ref.object_id) if ref.object_type == LINE_ITEM
                         else self._client.quote(ref.object_id))
            except ObjectGoneError as exc:
                log.warning("HubSpot %s %s is gone: %s", ref.object_type, ref.object_id, exc)
                continue
            except PermanentError as exc:
                failed.append(self._failed(ref.object_type, _named(ref.object_id), exc))
                continue
            refs += [ObjectRef(DEAL, str(link["id"]))
                     for link in snapshot.associated(owner, "deals")]
        return list(dict.fromkeys(refs))

    def _snapshots(self, ref: ObjectRef) -> list[bytes]:
        try:
            main = (self._client.company(ref.object_id) if ref.object_type == COMPANY
                    else self._client.deal(ref.object_id))
        except ObjectGoneError as exc:
            log.warning("HubSpot %s %s is gone, dropped from the fetch queue: %s",
                        ref.object_type, ref.object_id, exc)
            return []
        except PermanentError as exc:
            return [self._failed(ref.object_type, _named(ref.object_id), exc)]
        if ref.object_type == COMPANY:
            return self._numbered([Snapshot(COMPANY, None, self._clock(), main)])
        try:
            return self._deal(main)
        except PermanentError as exc:  # raised by a read, before anything is numbered
            return [self._failed(DEAL, main, exc)]

    def _deal(self, deal: Obj) -> list[bytes]:
        """An approved deal's snapshots (its companies' and its own); raises
        `PermanentError` for a read HubSpot refuses."""
        try:
            if not mapping.approved(self._settings, deal):
                return []
        except MappingError as exc:  # a stage that is not a text: kept, its error says so
            return [self._failed(DEAL, deal, exc)]
        now = self._clock()
        try:
            mapping.check_associations(deal)
        except MappingError:  # not read: kept unnumbered, its mapping_error says why
            return [snapshot.body(Snapshot(DEAL, None, now, deal))]
        companies = tuple(c for c in (self._gone_is_none(self._client.company, company_id)
                                      for company_id in _ids(deal, "companies"))
                          if c is not None)
        quotes = tuple(self._client.quote(quote_id) for quote_id in _ids(deal, "quotes"))
        item_ids = _ids(deal, "line_items")
        items = tuple(self._client.line_items(item_ids)) if item_ids else ()
        return self._numbered([*(Snapshot(COMPANY, None, now, c) for c in companies),
                               Snapshot(DEAL, None, now, deal, items, companies, quotes)])

    def _failed(self, kind: str, main: Obj, exc: Exception) -> bytes:
        """A failed read's snapshot: what was read, and why the rest was not."""
        log.warning("HubSpot %s %s could not be read, kept as a mapping error: %s",
                    kind, main.get("id"), exc)
        return snapshot.body(Snapshot(kind, None, self._clock(), main, error=str(exc)))

    @staticmethod
    def _gone_is_none(read: Callable[[str], Obj], object_id: str) -> Obj | None:
        """An object HubSpot says is gone (a deleted company) is missing from the snapshot,
        whose mapping then says so."""
        try:
            return read(object_id)
        except PermanentError as exc:
            log.warning("HubSpot object %s is missing from a deal's snapshot: %s",
                        object_id, exc)
            return None

    def _numbered(self, snaps: Sequence[Snapshot]) -> list[bytes]:
        bodies: list[bytes] = []
        for read in snaps:
            snap = read
            try:
                snap = snapshot.parse(json.loads(snapshot.body(read)))  # shapes checked
                key = mapping.fingerprint(self._settings, snap)
                modified = mapping.modified_at(snap.main)
            except MappingError:
                bodies.append(snapshot.body(read))  # unnumbered: its mapping_error
                continue
            numbered = self._state.number(ObjectRef(snap.kind, snap.object_id), key, modified)
            if numbered.version is None:
                log.info("HubSpot %s %s: a stale read, older than its latest version",
                         snap.kind, snap.object_id)
                continue
            bodies.append(snapshot.body(Snapshot(snap.kind, numbered.version, snap.fetched_at,
                                                 snap.main, snap.line_items, snap.companies,
                                                 snap.quotes)))
        return bodies


def _named(object_id: str) -> Obj:
    """An object that could not be read, by its id alone."""
    return {"id": object_id, "properties": {}}


def _ids(obj: Obj, kind: str) -> list[str]:
    """The ids of `obj`'s associated objects of `kind`, each once (an object linked with
    two labels is listed twice)."""
    return list(dict.fromkeys(str(link["id"]) for link in snapshot.associated(obj, kind)))
