"""The sync JetStream facade finsync codes against (nats-py runs on a private loop thread).

Rules:
- A `JetStream` connects at construction (`TransportUnavailableError` if no server answers
  within `connect_timeout_s`), then reconnects by itself for ever, to any server of
  `settings.servers` or of the cluster they announce.
- `publish` returns only once JetStream stored the message on a quorum of its replicas
  (its `PubAck`), asking again while the stream elects a leader (`publisher`); no PubAck
  within `timeout_s` is `TransportUnavailableError`, and then nothing may be claimed
  stored (though it may have been: a resend carries the same `msg_id`). A resend within
  the duplicate window is acknowledged with `duplicate=True` and stored once.
- `publish_many` sends all its messages before waiting (pipelined) and returns their
  PubAcks in order; if any has none by `timeout_s`, it raises and the caller resends them
  all, with the same message ids, so that the resend stores only what was missing.
- Header names and values must fit on a header line: a CR or LF, or a `:` in a name, is a
  `BadMessageError` (an id from outside can never inject a header).
- Only this package imports nats-py (an import-linter contract).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import nats
from nats.aio.client import Client as NatsClient
from nats.js import api
from nats.js.client import JetStreamContext

from finsync.streaming.consumer import MSG_ID, Consumer, ConsumerLag, Incoming
from finsync.streaming.errors import (
    BadMessageError,
    KeyExistsError,
    TransportRefusedError,
    TransportUnavailableError,
    WrongRevisionError,
)
from finsync.streaming.kv import KeyValue, KvEntry
from finsync.streaming.loop import EventLoopThread
from finsync.streaming.publisher import Publisher
from finsync.streaming.settings import TransportSettings

__all__ = [
    "Consumer", "ConsumerLag", "Incoming", "JetStream", "KeyExistsError", "KeyValue",
    "KvEntry", "Outgoing", "PubAck", "ReplicaStatus", "StreamSpec", "StreamStatus",
    "TransportRefusedError", "TransportUnavailableError", "WrongRevisionError",
]

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
API_TIMEOUT_S = 10.0  # stream and consumer management: a leader election can take seconds
GRACE_S = 2.0  # beyond a call's own timeout, before the waiting thread gives up on the loop
RECONNECT_WAIT_S = 0.5
PING_INTERVAL_S = 5  # a silent dead server is noticed in PING_INTERVAL_S * MAX_PINGS
MAX_PINGS = 3
_HEADER_NAME = re.compile(r"[!-9;-~]+")  # printable ASCII but ':'
_LINE_BREAK = re.compile(r"[\r\n]")


@dataclass(frozen=True, slots=True)
class PubAck:
    stream: str
    seq: int
    duplicate: bool


@dataclass(frozen=True, slots=True)
class Outgoing:
    subject: str
    data: bytes
    msg_id: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """A stream as finsync wants it: file storage, limits retention, old messages dropped
    first once `max_age_s` has passed."""

    name: str
    subjects: tuple[str, ...]
    replicas: int
    duplicate_window_s: float
    max_age_s: float


@dataclass(frozen=True, slots=True)
class ReplicaStatus:
    name: str
    current: bool
    offline: bool
    lag: int


@dataclass(frozen=True, slots=True)
class StreamStatus:
    name: str
    spec: StreamSpec  # as the stream is configured now
    messages: int
    first_seq: int
    last_seq: int
    leader: str | None
    replicas: tuple[ReplicaStatus, ...]  # the followers (the leader is not among them)


class JetStream:
    def __init__(self, settings: TransportSettings, name: str, *,
                 connect_timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        self.settings = settings
        self.name = name
        self._loop = EventLoopThread(name)
        self._events = _Events(name)
        try:
            self._nc: NatsClient = self._loop.run(
                _connect(settings.servers, self._events), connect_timeout_s,
                f"connect to {', '.join(settings.servers)}")
        except BaseException:
            self._loop.stop()
            raise
        self._events.client = self._nc
        self._js: JetStreamContext = self._nc.jetstream(timeout=API_TIMEOUT_S)
        self._publisher = Publisher(self._nc)

    def publish(self, subject: str, data: bytes, *, msg_id: str | None = None,
                headers: Mapping[str, str] | None = None, timeout_s: float = 5.0) -> PubAck:
        message = (subject, data, _headers(msg_id, headers or {}))
        (ack,) = self._loop.run(self._publisher.publish([message], timeout_s),
                                timeout_s + GRACE_S, f"publish to {subject}")
        return _pub_ack(ack)

    def publish_many(self, items: Sequence[Outgoing], timeout_s: float = 10.0) -> list[PubAck]:
        batch = [(item.subject, item.data, _headers(item.msg_id, item.headers)) for item in items]
        if not batch:
            return []
        acks = self._loop.run(self._publisher.publish(batch, timeout_s), timeout_s + GRACE_S,
                              f"publish of {len(batch)} messages")
        return [_pub_ack(ack) for ack in acks]

    def consumer(self, stream: str, durable: str, filter_subject: str, *,
                 ack_wait_s: float | None = None, max_ack_pending: int = 1000) -> Consumer:
        """The durable pull consumer `durable` on `stream`, made (or brought to this
        configuration) if need be; any number of processes may share it."""
        config = api.ConsumerConfig(
            durable_name=durable, ack_policy=api.AckPolicy.EXPLICIT,
            deliver_policy=api.DeliverPolicy.ALL, filter_subject=filter_subject,
            ack_wait=ack_wait_s or self.settings.ack_wait_s,
            max_deliver=self.settings.max_deliver, max_ack_pending=max_ack_pending)
        sub = self._loop.run(self._bind(stream, config), API_TIMEOUT_S + GRACE_S,
                             f"consumer {durable} on {stream}")
        return Consumer(self._loop, sub, stream, durable)

    def delete_consumer(self, stream: str, durable: str) -> bool:
        """Deletes the durable consumer; False when there was none."""
        return self._loop.run(self._delete_consumer(stream, durable), API_TIMEOUT_S + GRACE_S,
                              f"delete consumer {durable} on {stream}")

    def consumer_lag(self, stream: str, durable: str) -> ConsumerLag:
        info = self._loop.run(self._js.consumer_info(stream, durable), API_TIMEOUT_S + GRACE_S,
                              f"lag of {durable} on {stream}")
        return ConsumerLag(info.num_pending or 0, info.num_ack_pending or 0,
                           info.num_redelivered or 0)

    def consumer_lags(self, stream: str) -> dict[str, ConsumerLag]:
        """Every durable consumer of the stream, with its lag."""
        infos = self._loop.run(self._js.consumers_info(stream), API_TIMEOUT_S + GRACE_S,
                               f"consumers of {stream}")
        return {info.name: ConsumerLag(info.num_pending or 0, info.num_ack_pending or 0,
                                       info.num_redelivered or 0) for info in infos}

    def subject_counts(self, stream: str, subjects: str) -> dict[str, int]:
        """How many messages the stream holds on each subject matching `subjects`."""
        info = self._loop.run(self._js.stream_info(stream, subjects_filter=subjects),
                              API_TIMEOUT_S + GRACE_S, f"subjects of {stream}")
        return dict(info.state.subjects or {})

    def kv(self, bucket: str, *, ttl_s: float | None = None) -> KeyValue:
        """The bucket, made with `settings.replicas` (and the TTL) if it does not exist."""
        nats_kv = self._loop.run(self._bucket(bucket, ttl_s), API_TIMEOUT_S + GRACE_S,
                                 f"KV bucket {bucket}")
        return KeyValue(self._loop, nats_kv, bucket, self._js)

    def ensure_stream(self, spec: StreamSpec) -> None:
        """Makes the stream, or brings an existing one to `spec` (idempotent)."""
        self._loop.run(self._ensure_stream(spec), 2 * API_TIMEOUT_S + GRACE_S,
                       f"stream {spec.name}")

    def stream_status(self, name: str) -> StreamStatus:
        info = self._loop.run(self._js.stream_info(name), API_TIMEOUT_S + GRACE_S,
                              f"status of stream {name}")
        return _stream_status(name, info)

    @property
    def server(self) -> str | None:
        """The server this client is connected to now (`host:port`); None while it
        reconnects."""
        url = self._nc.connected_url
        return None if url is None or not self._nc.is_connected else url.netloc

    @property
    def max_payload(self) -> int:
        """The largest message (headers and data) the servers take, in bytes: 1 MiB unless
        the cluster's configuration says otherwise. A bigger one is `TransportRefusedError`."""
        return self._nc.max_payload

    def close(self) -> None:
        """Flushes what is buffered and closes; idempotent."""
        self._events.closing = True
        try:
            self._loop.run(self._nc.close(), API_TIMEOUT_S, "close")
        except TransportUnavailableError:
            pass  # already closed, or the loop is gone: nothing left to flush
        finally:
            self._loop.stop()

    def __enter__(self) -> JetStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def _bind(self, stream: str,
                    config: api.ConsumerConfig) -> JetStreamContext.PullSubscription:
        await self._js.add_consumer(stream, config)
        return await self._js.pull_subscribe_bind(durable=config.durable_name, stream=stream)

    async def _delete_consumer(self, stream: str, durable: str) -> bool:
        try:
            return await self._js.delete_consumer(stream, durable)
        except nats.js.errors.NotFoundError:
            return False

    async def _bucket(self, bucket: str, ttl_s: float | None) -> nats.js.kv.KeyValue:
        try:
            return await self._js.key_value(bucket)
        except nats.js.errors.BucketNotFoundError:
            return await self._js.create_key_value(
                bucket=bucket, ttl=ttl_s, replicas=self.settings.replicas, history=1,
                storage=api.StorageType.FILE)

    async def _ensure_stream(self, spec: StreamSpec) -> None:
        config = api.StreamConfig(
            name=spec.name, subjects=list(spec.subjects), retention=api.RetentionPolicy.LIMITS,
            storage=api.StorageType.FILE, num_replicas=spec.replicas,
            duplicate_window=spec.duplicate_window_s, max_age=spec.max_age_s,
            discard=api.DiscardPolicy.OLD)
        try:
            await self._js.add_stream(config)
        except nats.js.errors.BadRequestError as exc:
            if exc.err_code != STREAM_NAME_IN_USE:
                raise
            log.info("stream %s exists with another configuration: updating it", spec.name)
            await self._js.update_stream(config)


STREAM_NAME_IN_USE = 10058  # JetStream: a stream of that name exists, configured otherwise


async def _connect(servers: tuple[str, ...], events: _Events) -> NatsClient:
    return await nats.connect(
        servers=list(servers), name=events.name, allow_reconnect=True,
        max_reconnect_attempts=-1, reconnect_time_wait=RECONNECT_WAIT_S, connect_timeout=2,
        ping_interval=PING_INTERVAL_S, max_outstanding_pings=MAX_PINGS,
        error_cb=events.error, disconnected_cb=events.disconnected,
        reconnected_cb=events.reconnected)


class _Events:
    """What the connection reports, logged under the client's name."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.closing = False  # a disconnection asked for is no news
        self.client: NatsClient | None = None

    async def error(self, exc: Exception) -> None:
        # A refused connection to a node that is down is the normal course of a reconnect.
        log.info("nats client %s: %s: %s", self.name, exc.__class__.__name__, exc)
        self._drop_failed_attempt()

    def _drop_failed_attempt(self) -> None:
        # nats-py's reconnect loop opens each attempt's socket on the same transport object
        # and, when the handshake fails (a node that accepts but dies or answers late), opens
        # the next one over it without closing it: the socket leaks until the collector
        # finds it. Closing it here, between attempts, is what nats-py leaves out.
        client = self.client
        if client is not None and client.is_reconnecting and client._transport is not None:
            client._transport.close()  # type: ignore[no-untyped-call]  # nats-py: untyped

    async def disconnected(self) -> None:
        if not self.closing:
            log.warning("nats client %s: disconnected", self.name)

    async def reconnected(self) -> None:
        log.warning("nats client %s: reconnected", self.name)


def _headers(msg_id: str | None, headers: Mapping[str, str]) -> dict[str, str] | None:
    """The headers to send (None for none), checked."""
    checked = dict(headers)
    if msg_id is not None:
        checked[MSG_ID] = msg_id
    for name, value in checked.items():
        if _HEADER_NAME.fullmatch(name) is None:
            raise BadMessageError(f"header name {name!r}: printable ASCII without ':'")
        if _LINE_BREAK.search(value):
            raise BadMessageError(f"header {name}: a value cannot hold a CR or LF")
    if msg_id is not None and not msg_id.strip():
        raise BadMessageError("a message id cannot be blank")
    return checked or None


def _pub_ack(ack: api.PubAck) -> PubAck:
    return PubAck(ack.stream, ack.seq, bool(ack.duplicate))


def _stream_status(name: str, info: api.StreamInfo) -> StreamStatus:
    cluster = info.cluster or api.ClusterInfo()
    replicas = tuple(
        ReplicaStatus(peer.name or "", bool(peer.current), bool(peer.offline), peer.lag or 0)
        for peer in cluster.replicas or ())
    config = info.config
    spec = StreamSpec(name, tuple(config.subjects or ()), config.num_replicas or 1,
                      config.duplicate_window, config.max_age or 0.0)
    return StreamStatus(name, spec, info.state.messages, info.state.first_seq,
                        info.state.last_seq, cluster.leader, replicas)
