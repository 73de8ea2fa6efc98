"""Group commit for HTTP intake: concurrent requests share one transaction.

What a batch is stored with is the caller's (`store`): the hub's raw event log
(`stores_raw`), or on an intake node a replicated stream (`streaming.raw_publisher`), whose
publish of a batch is one pipelined round of PubAcks.

Rules:
- Durability before acknowledgement stays: a request is answered only after the batch that
  holds its payload committed. `receive` blocks its caller (a request thread) until then.
- Each request is checked (mapped, within its source's limits) in its own thread before it
  joins a batch; a payload that does not map is refused there with its own error and code,
  and never joins a batch (per-item results).
- One writer thread forms batches: everything already queued, then up to `linger_s` more
  for stragglers, at most `batch_max` items; it stores them with one multi-row insert in one
  transaction, hands what intake mapped to the processor, calls `on_commit(count)` (wake
  the pipeline), then answers every request with its own raw event id.
- A batch that fails for a reason other than the database being unavailable is stored again
  item by item, so that one item that cannot be stored fails alone. When the database is
  unavailable (`StorageUnavailableError`, or a `TransientError` such as the transport having
  no quorum), every request of the batch gets that error (503).
- A request may name the credential it was sent under (`token`): before storing a batch,
  the writer asks `recheck` once for the batch's credentials, and answers each request whose
  credential is no longer good with `recheck`'s error instead of storing it (an API token
  revoked since the request came in). A recheck that fails fails its batch. The raw event
  log's store does the same in the batch's own transaction (`stores_raw(intake,
  recheck_in)`: one connection and one transaction a batch, not two); a store's result for
  an item may be the error that refused it.
- The writer thread starts on the first request and ends after `idle_exit_s` without work
  (or on `close`); a wake-up that fails is logged and never fails the batch (the pipeline
  polls anyway).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

from sqlalchemy import Connection

from finsync.domain.envelope import Envelope
from finsync.domain.errors import TransientError
from finsync.domain.limits import InputLimits
from finsync.hub.intake import Intake
from finsync.storage.db import StorageUnavailableError
from finsync.storage.raw_log import RawIn

_log = logging.getLogger(__name__)

BATCH_MAX = 256
LINGER_S = 0.001
IDLE_EXIT_S = 30.0


T = TypeVar("T")
# The error for each credential (of those named) that is no longer good; one look-up.
Recheck = Callable[[Collection[str]], Mapping[str, Exception]]


@dataclass(frozen=True, slots=True)
class Checked:
    """A payload intake checked: what is kept, what it mapped to (None: the mapper failed by
    a defect), and when it was received (what it was mapped as of)."""

    raw: RawIn
    envelopes: list[Envelope] | None
    received_at: datetime
    token: str | None = None  # the credential it was sent under, rechecked before storing


# The same, in the transaction that stores the batch.
RecheckIn = Callable[[Connection, Collection[str]], Mapping[str, Exception]]
# Durably keeps a batch of checked payloads; each one's result (its raw event id, ...), or
# the error that refused it, in order, once the batch is durable.
Store = Callable[[Sequence[Checked]], Sequence[T | Exception]]


def stores_raw(intake: Intake, recheck_in: RecheckIn | None = None) -> Store[int]:
    """Batches stored in the hub's raw event log, one transaction each; results: raw ids.
    With `recheck_in`, the batch's credentials are looked up again in that transaction
    first, and an item whose credential is no longer good is not stored (its result: the
    recheck's error)."""
    def store(batch: Sequence[Checked]) -> list[int | Exception]:
        refused: Mapping[str, Exception] = {}

        def vet(conn: Connection) -> list[bool]:
            nonlocal refused
            named = {item.token for item in batch if item.token is not None}
            if recheck_in is not None and named:
                refused = recheck_in(conn, named)
            return [item.token not in refused for item in batch]

        def result(item: Checked, raw_id: int | None) -> int | Exception:
            if raw_id is not None:
                return raw_id
            assert item.token is not None, "only an item refused by its credential is unstored"
            return refused[item.token]

        ids = intake.store_mapped([(item.raw, item.envelopes) for item in batch], vet=vet)
        return [result(item, raw_id) for item, raw_id in zip(batch, ids, strict=True)]
    return store


@dataclass(frozen=True, slots=True)
class _Item(Generic[T]):
    checked: Checked
    future: Future[T] = field(default_factory=Future)


_STOP = object()


class GroupCommit(Generic[T]):
    """Stores concurrent `receive`s in shared batches (`store`) by a writer thread of its
    own."""

    def __init__(self, intake: Intake, store: Store[T], *, batch_max: int = BATCH_MAX,
                 linger_s: float = LINGER_S, on_commit: Callable[[int], None] | None = None,
                 idle_exit_s: float = IDLE_EXIT_S, recheck: Recheck | None = None) -> None:
        if batch_max < 1 or linger_s < 0:
            raise ValueError("batch_max must be at least 1 and linger_s not negative")
        self._intake, self._store = intake, store
        self.batch_max, self.linger_s = batch_max, linger_s
        self._on_commit, self._idle_exit_s = on_commit, idle_exit_s
        self._recheck = recheck
        self._queue: queue.SimpleQueue[_Item[T] | object] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.batches = self.items = 0  # committed so far (for tests and benchmarks)

    def receive(self, source: str, body: bytes, headers: Mapping[str, str],
                content_type: str | None = None, limits: InputLimits | None = None, *,
                writes_as: Callable[[str], bool] | None = None,
                token: str | None = None) -> T:
        """Check one payload (`Intake.check`), then store it with its neighbours (if
        `token` is still good then); its result (its raw event id, ...) once its batch is
        durable. Raises `MappingError` (refusal recorded), the recheck's error or the
        batch's storage error."""
        envelopes, at = self._intake.check(source, body, headers, content_type, limits,
                                           writes_as=writes_as)
        item: _Item[T] = _Item(Checked(RawIn(source, body, headers, content_type), envelopes,
                                       at, token))
        with self._lock:
            self._queue.put(item)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="finsync-intake-writer",
                                                 daemon=True)
                self._thread.start()
        return item.future.result()

    def close(self, timeout_s: float = 10.0) -> None:
        """Store what is queued, then end the writer thread."""
        with self._lock:
            thread = self._thread
            if thread is None:
                return
            self._queue.put(_STOP)
        thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            if batch:
                self._commit(self._rechecked(batch))

    def _next_batch(self) -> list[_Item[T]] | None:
        """The next batch; None when the thread is to end; empty: nothing came in time."""
        try:
            first = self._queue.get(timeout=self._idle_exit_s)
        except queue.Empty:
            with self._lock:
                if self._queue.empty():
                    self._thread = None
                    return None
            return []
        if first is _STOP:
            self._stop()
            return None
        assert isinstance(first, _Item)
        batch = [first]
        deadline = time.monotonic() + self.linger_s
        while len(batch) < self.batch_max:
            try:
                got = self._queue.get_nowait()
            except queue.Empty:
                remaining_s = deadline - time.monotonic()
                if remaining_s <= 0:
                    break
                try:
                    got = self._queue.get(timeout=remaining_s)
                except queue.Empty:
                    break
            if got is _STOP:
                self._queue.put(_STOP)  # after this batch
                break
            assert isinstance(got, _Item)
            batch.append(got)
        return batch

    def _stop(self) -> None:
        with self._lock:
            self._thread = None
        leftovers: list[_Item[T]] = []
        while not self._queue.empty():
            got = self._queue.get_nowait()
            if isinstance(got, _Item):
                leftovers.append(got)
        if leftovers:
            self._commit(self._rechecked(leftovers))

    def _rechecked(self, batch: list[_Item[T]]) -> list[_Item[T]]:
        """The items whose credential is still good (or who named none); the others are
        answered with the recheck's error."""
        named = {item.checked.token for item in batch if item.checked.token is not None}
        if self._recheck is None or not named:
            return batch
        try:
            refused = self._recheck(named)
        except Exception as exc:
            for item in batch:
                item.future.set_exception(exc)
            return []
        kept = []
        for item in batch:
            token = item.checked.token
            error = refused.get(token) if token is not None else None
            if error is None:
                kept.append(item)
            else:
                item.future.set_exception(error)
        return kept

    def _commit(self, batch: list[_Item[T]]) -> None:
        if not batch:
            return
        try:
            results = self._store([item.checked for item in batch])
        except (StorageUnavailableError, TransientError) as exc:
            for item in batch:
                item.future.set_exception(exc)
            return
        except Exception as exc:
            if len(batch) == 1:
                batch[0].future.set_exception(exc)
                return
            _log.warning("a batch of %d raw events failed (%s); storing them one by one",
                         len(batch), type(exc).__name__)
            for item in batch:
                self._commit([item])
            return
        stored = sum(1 for result in results if not isinstance(result, Exception))
        self.batches += 1
        self.items += stored
        if stored:
            self._wake(stored)
        for item, result in zip(batch, results, strict=True):
            if isinstance(result, Exception):
                item.future.set_exception(result)
            else:
                item.future.set_result(result)

    def _wake(self, count: int) -> None:
        if self._on_commit is None:
            return
        try:
            self._on_commit(count)
        except Exception:  # the pipeline still polls: a lost wake-up only delays it
            _log.exception("waking the pipeline after a committed batch failed")
