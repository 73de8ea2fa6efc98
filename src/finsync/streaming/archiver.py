"""The archiver: raw messages from `<NS>_RAW` into the raw event log, then each raw event's
canonical envelopes onto the partitioned `<NS>_EVENTS`.

Rules:
- Any number of archivers run (one loop in every `finsync worker`): they share the durable
  pull consumer `archiver`, so a message is handed to one of them at a time.
- A batch (at most `BATCH_MAX` messages) is stored in one transaction: one multi-row insert
  that skips the transport ids already stored (`raw_log.append_transported`). In that same
  transaction each new raw event is mapped (pure, the hub's mapper registry, as of the
  moment the intake node received it, so to the envelopes intake mapped) and marked:
  `mapped` at once; a payload that does not map (`DomainError`) rejected with its
  `mapping_error` exception as the processor does (`processor.reject_mapping`); a mapper
  failing by a defect quarantined as `internal_error` (`processor.quarantine_in`).
- Why `mapped` at once: the in-process processor takes only `received` raw events, so it
  never takes one the archiver stored, whether or not it runs beside the transport; its
  envelopes are accepted from the event stream by the worker owning their partition. A raw
  event that reaches the log another way (a webhook stored directly, a raw event triage
  sends again) is still `received`: it stays the processor's.
- After the commit, each mapped raw event with envelopes is published, one message each
  (`streaming.event_message`, message id `raw:<raw id>`), in one pipelined round.
- The raw messages are acknowledged only after the commit AND every PubAck. A crash
  anywhere before makes JetStream hand them over again: the rows are found by transport id
  (nothing stored twice), a `mapped` one is mapped again and published again under the
  same message id (caught by the duplicate window; after it, by acceptance's de-duplication
  in the database); a `rejected` one publishes nothing.
- The database or the transport failing fails the batch: its messages are handed back
  (`nak`, after `RETRY_DELAY_S`) and nothing is acknowledged.
- A raw event whose envelopes make a message over what the transport carries
  (`message_limit`) is quarantined as `internal_error` in the batch's transaction: never
  published, never marked mapped, and it never closes the connection for its batch.
- A raw event mapped once that does not map again on a redelivery (its source's
  configuration changed in between) is quarantined as `internal_error`: finance sees that
  its envelopes may never have been published.
- A message an intake node did not write (`UnreadableRawMessageError`) cannot be stored
  without guessing: it is logged as an error and terminated, and the batch goes on.
- A batch whose transaction fails by a defect (not the database being unavailable) is
  stored again one message per transaction; a message that fails even alone opens an
  `internal_error` exception naming its stream sequence (with the traceback) and is
  terminated: one bad message never holds back the stream.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, Engine

from finsync.domain.envelope import Envelope
from finsync.domain.errors import DomainError, ExceptionClass
from finsync.domain.status import RawStatus
from finsync.hub.intake import subject_key
from finsync.hub.mapping import MapperRegistry
from finsync.hub.pipeline import describe, trace
from finsync.hub.processor import quarantine_in, reject_mapping
from finsync.storage import exception_log, raw_log
from finsync.storage.db import StorageUnavailableError, transaction
from finsync.storage.exception_log import NewException
from finsync.storage.raw_log import RawEvent, Transported
from finsync.storage.text import storable
from finsync.streaming.client import Consumer, Incoming, JetStream, Outgoing
from finsync.streaming.event_message import event_message
from finsync.streaming.message_limit import (
    MESSAGE_MAX_BYTES,
    MessageTooLargeError,
    check_size,
)
from finsync.streaming.raw_message import ReadRaw, UnreadableRawMessageError, read_raw
from finsync.streaming.settings import TransportSettings
from finsync.streaming.setup import RAW
from finsync.streaming.subjects import raw_filter

log = logging.getLogger(__name__)

DURABLE = "archiver"
BATCH_MAX = 500
FETCH_WAIT_S = 1.0
RETRY_DELAY_S = 1.0
PUBLISH_TIMEOUT_S = 10.0


@dataclass(slots=True)
class Archived:
    """What one batch did: messages taken, raw events stored anew, raw events found stored
    already (a redelivery), raw events rejected, event messages published, messages
    terminated (unreadable, or unstorable even alone)."""

    messages: int = 0
    stored: int = 0
    again: int = 0
    rejected: int = 0
    published: int = 0
    unreadable: int = 0
    unstorable: int = 0
    raw_ids: list[int] = field(default_factory=list)

    def add(self, other: Archived) -> None:
        for name in ("messages", "stored", "again", "rejected", "published", "unreadable",
                     "unstorable"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.raw_ids.extend(other.raw_ids)


class Archiver:
    def __init__(self, engine: Engine, mappers: MapperRegistry, js: JetStream,
                 settings: TransportSettings, clock: Callable[[], datetime], *,
                 batch_max: int = BATCH_MAX, fetch_wait_s: float = FETCH_WAIT_S,
                 message_max_bytes: int = MESSAGE_MAX_BYTES) -> None:
        self._engine, self._mappers, self._js = engine, mappers, js
        self._settings, self._clock = settings, clock
        self._batch_max, self.fetch_wait_s = batch_max, fetch_wait_s
        self._message_max_bytes = message_max_bytes
        self._consumer: Consumer | None = None
        self.transactions = 0  # batches committed (for tests and benchmarks)

    def step(self, progressed: Callable[[], None] | None = None) -> int:
        """Archive batches until a fetch comes back empty (after `fetch_wait_s`: the long
        poll is the loop's wait); how many messages. A `hub.pipeline.Step`: a worker runs
        it in a `PipelineWorker`, told of each batch (`progressed`)."""
        total = 0
        while True:
            done = self.archive_batch().messages
            if not done:
                return total
            total += done
            if progressed is not None:
                progressed()

    def archive_batch(self) -> Archived:
        messages = self.bind().fetch(self._batch_max, self.fetch_wait_s)
        if not messages:
            return Archived()
        readable = self._readable(messages)
        try:
            archived, outgoing, kept = self._stored(readable)
            self._js.publish_many(outgoing, timeout_s=PUBLISH_TIMEOUT_S)
        except Exception:
            self._hand_back(readable)
            raise
        # One trip to the client's loop for the batch, not a thread hand-over per message.
        self.bind().ack_all([incoming for incoming, _read in kept])
        archived.messages = len(messages)
        archived.unreadable = len(messages) - len(readable)
        archived.published = len(outgoing)
        return archived

    def _stored(self, readable: Sequence[tuple[Incoming, ReadRaw]]
                ) -> tuple[Archived, list[Outgoing], list[tuple[Incoming, ReadRaw]]]:
        """The batch stored in one transaction; if that fails by a defect (not the database
        being unavailable), one message per transaction, so that one that cannot be stored
        is given up alone (`_give_up`). What was done, what to publish, what to ack."""
        try:
            archived, outgoing = self._store(readable)
            return archived, outgoing, list(readable)
        except StorageUnavailableError:
            raise
        except Exception as exc:
            log.warning("a batch of %d raw messages failed as a whole (%s); storing them one "
                        "at a time", len(readable), describe(exc))
        total, outgoing, kept = Archived(), [], []
        for item in readable:
            try:
                done, out = self._store([item])
            except StorageUnavailableError:
                raise
            except Exception as exc:
                self._give_up(*item, exc)
                total.unstorable += 1
                continue
            total.add(done)
            outgoing.extend(out)
            kept.append(item)
        return total, outgoing, kept

    def _give_up(self, incoming: Incoming, read: ReadRaw, exc: Exception) -> None:
        """A message that cannot be stored, even alone: an `internal_error` exception names
        it (its stream sequence: it stays in the stream until the retention ends) with the
        traceback, then it is terminated, so that it never holds back the others."""
        seq = incoming.stream_seq
        log.error("raw stream message #%s (%s) could not be stored: %s", seq,
                  read.transport_id, describe(exc))
        with transaction(self._engine) as conn:
            exception_log.open_exception(conn, NewException(
                ExceptionClass.INTERNAL_ERROR,
                f"transport:raw:{subject_key(read.transport_id)}",
                f"raw message {storable(read.transport_id)} of {read.raw.source} (stream "
                f"{self._settings.stream(RAW)}, seq {seq}) could not be stored: "
                f"{describe(exc)}", objects=(f"raw_message:{self._settings.stream(RAW)}:{seq}",),
                detail=trace(exc)), self._clock())
        incoming.term()

    def bind(self) -> Consumer:
        """The durable consumer `archiver`, made (or brought to this configuration) on
        first use."""
        if self._consumer is None:
            self._consumer = self._js.consumer(self._settings.stream(RAW), DURABLE,
                                               raw_filter(self._settings.namespace),
                                               ack_wait_s=self._settings.ack_wait_s,
                                               max_ack_pending=4 * self._batch_max)
        return self._consumer

    def _readable(self, messages: Sequence[Incoming]) -> list[tuple[Incoming, ReadRaw]]:
        readable = []
        for incoming in messages:
            try:
                readable.append((incoming, read_raw(incoming.data, incoming.headers)))
            except UnreadableRawMessageError as exc:
                log.error("raw stream message #%s on %s terminated: %s", incoming.stream_seq,
                          incoming.subject, exc)
                incoming.term()
        return readable

    def _store(self, readable: Sequence[tuple[Incoming, ReadRaw]]
               ) -> tuple[Archived, list[Outgoing]]:
        """Store and map the batch in one transaction; what to publish once it committed."""
        archived = Archived()
        reads = list({read.transport_id: read for _incoming, read in readable}.values())
        outgoing: list[Outgoing] = []
        with transaction(self._engine) as conn:
            now = self._clock()
            new = raw_log.append_transported(conn, [
                Transported(r.transport_id, r.raw, r.received_at) for r in reads])
            known = raw_log.by_transport_ids(
                conn, [r.transport_id for r in reads if r.transport_id not in new])
            mapped: list[int] = []
            for read in reads:
                if read.transport_id in new:
                    raw = _raw_event(new[read.transport_id], read)
                    envelopes = self._decide(conn, raw, now)
                    archived.stored += 1
                else:
                    raw_id, status = known[read.transport_id]
                    raw = _raw_event(raw_id, read)
                    envelopes = self._again(conn, raw, status, now)
                    archived.again += 1
                message = self._carried(conn, raw, envelopes, now) if envelopes else None
                if envelopes and message is None:
                    envelopes = None  # quarantined: too large to carry
                if envelopes is None:
                    archived.rejected += 1
                elif read.transport_id in new:
                    mapped.append(raw.id)
                if message is not None:
                    outgoing.append(message)
                archived.raw_ids.append(raw.id)
            raw_log.mark_many(conn, mapped, RawStatus.MAPPED, now)
        self.transactions += 1
        return archived, outgoing

    def _decide(self, conn: Connection, raw: RawEvent, now: datetime) -> list[Envelope] | None:
        """A new raw event's envelopes, or None once it is rejected (or quarantined)."""
        try:
            return self._mappers.map(raw)
        except DomainError as exc:
            reject_mapping(conn, raw, exc, now)
        except Exception as exc:  # a defect of the mapper's: this raw event alone
            quarantine_in(conn, raw, exc, now)
        return None

    def _again(self, conn: Connection, raw: RawEvent, status: RawStatus,
               now: datetime) -> list[Envelope] | None:
        """A raw event stored by an earlier delivery of its message: its envelopes again
        when it was mapped (the publish may not have happened); [] when it is decided
        otherwise (nothing to publish). Mapping is pure; if it fails now (the source's
        configuration changed in between) the raw event is quarantined (None) rather than
        holding its batch back for ever."""
        if status is not RawStatus.MAPPED:
            return []
        try:
            return self._mappers.map(raw)
        except Exception as exc:
            quarantine_in(conn, raw, exc, now)
            return None

    def _carried(self, conn: Connection, raw: RawEvent, envelopes: list[Envelope],
                 now: datetime) -> Outgoing | None:
        """The message carrying a raw event's envelopes; None once the raw event is
        quarantined because that message is over what the transport carries."""
        message = self._outgoing(raw.id, envelopes)
        try:
            check_size(message.data, message.headers, message.msg_id, self._message_max_bytes)
        except MessageTooLargeError as exc:
            quarantine_in(conn, raw, exc, now)
            return None
        return message

    def _outgoing(self, raw_id: int, envelopes: list[Envelope]) -> Outgoing:
        message = event_message(self._settings.namespace, self._settings.partitions, raw_id,
                                envelopes)
        return Outgoing(message.subject, message.data, message.msg_id, message.headers)

    def _hand_back(self, readable: Sequence[tuple[Incoming, ReadRaw]]) -> None:
        """A failed batch comes again after `RETRY_DELAY_S` (or `ack_wait` if even the
        nak cannot be sent)."""
        for incoming, _read in readable:
            try:
                incoming.nak(RETRY_DELAY_S)
            except Exception as exc:
                log.warning("nak of raw stream message #%s failed (%s); it comes again "
                            "after ack_wait", incoming.stream_seq, type(exc).__name__)


def _raw_event(raw_id: int, read: ReadRaw) -> RawEvent:
    return RawEvent(raw_id, read.raw.source, read.received_at, read.raw.headers,
                    read.raw.body, RawStatus.RECEIVED)
