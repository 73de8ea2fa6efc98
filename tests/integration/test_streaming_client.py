"""The JetStream facade against a real 3-node cluster (`tests/natskit.py`): duplicates are
stored once, pipelined publishes keep their order, an unacked message comes back, KV races
have one winner, a lost node costs nothing, and without a quorum nothing is claimed stored.

Each test has a namespace of its own (`transport_settings`) on the session's cluster; a
test that kills nodes restarts them before it ends."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from finsync.streaming.client import (
    Consumer,
    Incoming,
    JetStream,
    KeyExistsError,
    Outgoing,
    PubAck,
    StreamStatus,
    TransportRefusedError,
    TransportUnavailableError,
    WrongRevisionError,
)
from finsync.streaming.errors import BadMessageError
from finsync.streaming.settings import TransportSettings
from finsync.streaming.setup import ensure_streams, stream_specs
from finsync.streaming.subjects import event_subject, partition_filter, raw_subject
from tests.natskit import NatsCluster, free_port

STATUS_ATTEMPTS = 240  # 0.25 s apart: a restarted node catches up in a few seconds


@pytest.fixture
def js(transport_settings: TransportSettings) -> Iterator[JetStream]:
    client = JetStream(transport_settings, "test")
    ensure_streams(client, transport_settings)
    yield client
    client.close()


def _raw(settings: TransportSettings) -> str:
    return raw_subject(settings.namespace, "stripe")


def test_a_resend_with_the_same_msg_id_is_acked_as_a_duplicate_and_stored_once(
        js: JetStream, transport_settings: TransportSettings) -> None:
    first = js.publish(_raw(transport_settings), b"{}", msg_id="stripe/evt_1")
    again = js.publish(_raw(transport_settings), b"{}", msg_id="stripe/evt_1")
    other = js.publish(_raw(transport_settings), b"{}", msg_id="stripe/evt_2")
    raw = transport_settings.stream("raw")
    assert first == PubAck(raw, 1, duplicate=False)
    assert again == PubAck(raw, 1, duplicate=True)
    assert other == PubAck(raw, 2, duplicate=False)
    assert js.stream_status(raw).messages == 2


def test_publish_many_keeps_the_order_and_every_message_is_fetched_once(
        js: JetStream, transport_settings: TransportSettings) -> None:
    ns = transport_settings.namespace
    sent = [Outgoing(event_subject(ns, "le_us", 3), f"{i}".encode(), msg_id=f"raw:{i}",
                     headers={"Finsync-Raw-Id": str(i)}) for i in range(1000)]
    acks = js.publish_many(sent)
    assert [ack.seq for ack in acks] == list(range(1, 1001))
    assert not any(ack.duplicate for ack in acks)
    consumer = js.consumer(transport_settings.stream("events"), "p3", partition_filter(ns, 3))
    got = []
    batch = consumer.fetch(250, timeout_s=5)
    while batch:
        got += batch
        for message in batch:
            message.ack()
        batch = consumer.fetch(250, timeout_s=0.5)
    assert [m.data for m in got] == [item.data for item in sent]
    assert [m.stream_seq for m in got] == list(range(1, 1001))
    assert {m.num_delivered for m in got} == {1}
    assert got[7].headers["Finsync-Raw-Id"] == "7"
    assert got[7].headers["Nats-Msg-Id"] == got[7].msg_id == "raw:7"
    # acks are sent without waiting: the lag shows them once the server took them
    lag = js.consumer_lag(transport_settings.stream("events"), "p3")
    assert (lag.num_pending, lag.num_redelivered) == (0, 0)


def test_a_resent_batch_stores_only_what_was_missing(
        js: JetStream, transport_settings: TransportSettings) -> None:
    """The caller's answer to a failed publish_many is to send the whole batch again."""
    ns = transport_settings.namespace
    batch = [Outgoing(event_subject(ns, None, 0), b"x", msg_id=f"raw:{i}") for i in range(10)]
    js.publish_many(batch[:4])
    acks = js.publish_many(batch)
    assert [ack.duplicate for ack in acks] == [True] * 4 + [False] * 6
    assert js.stream_status(transport_settings.stream("events")).messages == 10


def test_a_partition_consumer_sees_its_partition_only(
        js: JetStream, transport_settings: TransportSettings) -> None:
    ns = transport_settings.namespace
    js.publish_many([Outgoing(event_subject(ns, entity, p), f"{entity or '-'}:{p}".encode())
                     for entity in ("le_us", "le_de", None) for p in (0, 1, 10)])
    consumer = js.consumer(transport_settings.stream("events"), "p1", partition_filter(ns, 1))
    got = _take(consumer, 3)
    assert sorted(m.data for m in got) == [b"-:1", b"le_de:1", b"le_us:1"]
    assert consumer.fetch(100, timeout_s=0.5) == []
    assert {m.subject for m in got} == {f"{ns}.events.le_us.1", f"{ns}.events.le_de.1",
                                        f"{ns}.events._.1"}


def test_an_unacked_message_is_delivered_again_after_ack_wait(
        js: JetStream, transport_settings: TransportSettings) -> None:
    ns = transport_settings.namespace
    js.publish(event_subject(ns, "le_us", 0), b"once", msg_id="raw:1")
    consumer = js.consumer(transport_settings.stream("events"), "p0", partition_filter(ns, 0),
                           ack_wait_s=1.0)
    (first,) = _take(consumer, 1)
    assert (first.num_delivered, first.msg_id) == (1, "raw:1")
    # not acked (a worker died mid-batch): the ack wait runs out, it comes back
    (again,) = _take(consumer, 1)
    assert (again.data, again.stream_seq, again.num_delivered) == (b"once", first.stream_seq, 2)
    again.ack()
    assert consumer.fetch(10, timeout_s=2) == []  # acked: the ack wait passes, nothing comes


def test_nak_redelivers_and_term_never_again(
        js: JetStream, transport_settings: TransportSettings) -> None:
    ns = transport_settings.namespace
    js.publish_many([Outgoing(event_subject(ns, "le_us", 0), body) for body in (b"a", b"b")])
    consumer = js.consumer(transport_settings.stream("events"), "p0", partition_filter(ns, 0),
                           ack_wait_s=30.0)
    first, second = _take(consumer, 2)
    first.nak()
    second.term()
    (back,) = _take(consumer, 1)
    assert (back.data, back.num_delivered) == (b"a", 2)
    back.in_progress()
    back.ack()
    assert consumer.fetch(2, timeout_s=1) == []


def test_two_processes_sharing_a_durable_consumer_each_get_different_messages(
        js: JetStream, transport_settings: TransportSettings) -> None:
    """The archiver runs in every worker on one durable consumer: no message goes to both."""
    ns = transport_settings.namespace
    js.publish_many([Outgoing(raw_subject(ns, "s"), f"{i}".encode()) for i in range(100)])
    with JetStream(transport_settings, "other") as other:
        mine = js.consumer(transport_settings.stream("raw"), "archiver", f"{ns}.raw.>")
        theirs = other.consumer(transport_settings.stream("raw"), "archiver", f"{ns}.raw.>")
        seen: list[int] = []
        for _ in range(STATUS_ATTEMPTS):
            for consumer in (mine, theirs):
                batch = consumer.fetch(30, timeout_s=0.5)
                seen += [message.stream_seq for message in batch]
                consumer.ack_all(batch)
            if len(seen) >= 100:
                break
    assert sorted(seen) == list(range(1, 101))


def test_consumer_lag_counts_what_waits_what_is_out_and_what_came_back(
        js: JetStream, transport_settings: TransportSettings) -> None:
    ns = transport_settings.namespace
    events = transport_settings.stream("events")
    js.publish_many([Outgoing(event_subject(ns, "le_de", 5), b"m") for _ in range(10)])
    consumer = js.consumer(events, "p5", partition_filter(ns, 5), ack_wait_s=1.0)
    out = _take(consumer, 4)
    lag = js.consumer_lag(events, "p5")
    assert (lag.num_pending, lag.num_ack_pending, lag.num_redelivered) == (6, 4, 0)
    rest = _take(consumer, 6)
    consumer.ack_all(rest)
    back = _take(consumer, 4)  # the 4 unacked ones, after the ack wait
    # Each message's ack wait runs on its own timer: on a loaded machine they come back in
    # any order (seen: 1, 3, 4, 2).
    assert sorted(m.stream_seq for m in back) == [m.stream_seq for m in out]
    assert [m.num_delivered for m in back] == [2, 2, 2, 2]
    lag = js.consumer_lag(events, "p5")
    assert (lag.num_pending, lag.num_ack_pending, lag.num_redelivered) == (0, 4, 4)
    assert js.delete_consumer(events, "p5") is True
    assert js.delete_consumer(events, "p5") is False
    with pytest.raises(TransportRefusedError):
        js.consumer_lag(events, "p5")


def test_kv_races_have_one_winner(js: JetStream, transport_settings: TransportSettings) -> None:
    leases = js.kv(transport_settings.bucket("leases"), ttl_s=transport_settings.lease_ttl_s)
    assert leases.get("p.3") is None
    revision = leases.create("p.3", b"worker-a")
    with pytest.raises(KeyExistsError):
        leases.create("p.3", b"worker-b")
    renewed = leases.update("p.3", b"worker-a", revision)
    assert renewed > revision
    with pytest.raises(WrongRevisionError):
        leases.update("p.3", b"worker-b", revision)  # b read the lease before a renewed it
    entry = leases.get("p.3")
    assert entry is not None
    assert (entry.value, entry.revision) == (b"worker-a", renewed)
    with pytest.raises(WrongRevisionError):
        leases.delete("p.3", last_revision=revision)
    leases.delete("p.3", last_revision=renewed)  # a released lease: free for the next
    assert leases.get("p.3") is None
    assert leases.create("p.3", b"worker-b") > renewed
    leases.put("p.4", b"worker-b")
    assert leases.keys() == ["p.3", "p.4"]


def test_a_lease_not_renewed_lapses_by_itself(
        js: JetStream, transport_settings: TransportSettings) -> None:
    """A dead worker's lease frees its partitions once the bucket's TTL has passed."""
    leases = js.kv(transport_settings.bucket("leases"), ttl_s=1.0)
    revision = leases.create("p.0", b"dead-worker")
    for _ in range(STATUS_ATTEMPTS):
        if leases.get("p.0") is None:
            break
        time.sleep(0.25)
    assert leases.get("p.0") is None
    with pytest.raises(WrongRevisionError):
        leases.update("p.0", b"dead-worker", revision)  # too late to renew
    assert leases.create("p.0", b"next-worker") > revision


def test_a_lease_taken_over_as_it_lapses_is_taken_without_an_error(
        js: JetStream, transport_settings: TransportSettings) -> None:
    """A successor asking for a lapsing lease again and again: each ask is refused
    (`KeyExistsError`) until the TTL ends the old value, then one takes it, even the ask
    in flight at that moment (nats-py's create then read a key whose value had just
    expired and raised "key not found": a relay taking over failed its round)."""
    leases = js.kv(transport_settings.bucket("leases"), ttl_s=0.2)
    for _ in range(10):
        lapsing = leases.create("relay", b"dead-worker")
        while True:
            try:
                taken = leases.create("relay", b"next-worker")
                break
            except KeyExistsError:
                continue
        assert taken > lapsing
        leases.delete("relay", last_revision=taken)


def test_ack_all_acks_a_whole_batch(js: JetStream,
                                    transport_settings: TransportSettings) -> None:
    ns = transport_settings.namespace
    js.publish_many([Outgoing(event_subject(ns, "le_us", 2), b"m") for _ in range(20)])
    consumer = js.consumer(transport_settings.stream("events"), "p2", partition_filter(ns, 2),
                           ack_wait_s=1.0)
    batch = _take(consumer, 20)
    consumer.ack_all(batch)
    consumer.ack_all([])
    assert consumer.fetch(20, timeout_s=3) == []  # past the ack wait: none came back


def test_the_same_bucket_is_opened_not_made_again(
        js: JetStream, transport_settings: TransportSettings) -> None:
    name = transport_settings.bucket("nodes")
    js.kv(name).put("n.a", b"1")
    assert js.kv(name).keys() == ["n.a"]


def test_ensure_streams_is_idempotent_and_brings_a_stream_to_its_configuration(
        js: JetStream, transport_settings: TransportSettings) -> None:
    ensure_streams(js, transport_settings)
    js.publish(_raw(transport_settings), b"kept", msg_id="s/1")
    changed = TransportSettings(kind="nats", servers=transport_settings.servers,
                                namespace=transport_settings.namespace, replicas=3,
                                duplicate_window_s=60.0)
    ensure_streams(js, changed)
    for spec in stream_specs(changed):
        assert js.stream_status(spec.name).spec == spec
    assert js.stream_status(transport_settings.stream("raw")).messages == 1  # data kept
    assert [spec.subjects for spec in stream_specs(changed)] == [
        (f"{changed.namespace}.{level}.>",) for level in ("raw", "events", "out")]


def test_processes_starting_at_once_make_each_stream_once(
        transport_settings: TransportSettings) -> None:
    clients = [JetStream(transport_settings, f"starter-{i}") for i in range(4)]
    try:
        threads = [threading.Thread(target=ensure_streams, args=(client, transport_settings))
                   for client in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for spec in stream_specs(transport_settings):
            assert clients[0].stream_status(spec.name).spec == spec
    finally:
        for client in clients:
            client.close()


def test_a_process_can_start_while_a_node_is_down(
        js: JetStream, transport_settings: TransportSettings, nats_cluster: NatsCluster) -> None:
    """A worker that starts while a node is down: its streams exist already, or are made.
    Until the cluster settles (a new meta leader if the lost node led it; replicas that
    cannot be placed yet) JetStream may not answer: transient, the worker tries again."""
    fresh = TransportSettings(kind="nats", servers=transport_settings.servers,
                              namespace=f"{transport_settings.namespace}x", replicas=3)
    nats_cluster.kill(2)
    try:
        _until_available(lambda: ensure_streams(js, transport_settings))
        _until_available(lambda: ensure_streams(js, fresh))
        ack = js.publish(raw_subject(fresh.namespace, "s"), b"{}", timeout_s=30.0)
        assert ack == PubAck(fresh.stream("raw"), 1, duplicate=False)
    finally:
        nats_cluster.restart(2)


def test_a_header_that_would_break_the_message_is_refused(
        js: JetStream, transport_settings: TransportSettings) -> None:
    for headers in ({"X-Evil": "a\r\nNats-Msg-Id: forged"}, {"Bad:Name": "v"}, {"": "v"}):
        with pytest.raises(BadMessageError):
            js.publish(_raw(transport_settings), b"{}", headers=headers)
    with pytest.raises(BadMessageError):
        js.publish(_raw(transport_settings), b"{}", msg_id="id\nX: y")
    assert js.stream_status(transport_settings.stream("raw")).messages == 0


def test_a_subject_no_stream_takes_is_unavailable_and_says_so(
        js: JetStream, transport_settings: TransportSettings) -> None:
    with pytest.raises(TransportUnavailableError, match="no response from stream"):
        js.publish(f"{transport_settings.namespace}.nowhere", b"{}", timeout_s=1.0)


def test_what_the_server_cannot_take_is_refused_at_once(
        js: JetStream, transport_settings: TransportSettings) -> None:
    assert js.max_payload == 1 << 20  # the server's default
    too_big = b"x" * (js.max_payload + 1)
    with pytest.raises(TransportRefusedError):
        js.publish(_raw(transport_settings), too_big)
    with pytest.raises(TransportRefusedError, match="above the servers' max_payload"):
        js.publish_many([Outgoing(_raw(transport_settings), b"{}", msg_id="s/ok"),
                         Outgoing(_raw(transport_settings), too_big)])
    with pytest.raises(TransportRefusedError):
        js.publish_many([Outgoing(f"{transport_settings.namespace}.raw.a b", b"{}")])
    # a batch with one message too big is refused whole, before any is sent
    assert js.stream_status(transport_settings.stream("raw")).messages == 0
    with pytest.raises(TransportRefusedError):
        js.consumer("NO_SUCH_STREAM", "p0", "x.>")


def test_no_server_is_transport_unavailable() -> None:
    settings = TransportSettings(kind="nats", servers=(f"nats://127.0.0.1:{free_port()}",))
    with pytest.raises(TransportUnavailableError, match="connect"):
        JetStream(settings, "nobody", connect_timeout_s=1.0)


def test_a_closed_client_is_unavailable(transport_settings: TransportSettings) -> None:
    client = JetStream(transport_settings, "closing")
    ensure_streams(client, transport_settings)
    consumer = client.consumer(transport_settings.stream("raw"), "archiver",
                               f"{transport_settings.namespace}.raw.>")
    failures: list[Exception] = []

    def fetch() -> None:
        try:
            consumer.fetch(10, timeout_s=30)
        except TransportUnavailableError as exc:
            failures.append(exc)

    fetching = threading.Thread(target=fetch)
    fetching.start()
    time.sleep(0.5)  # let it wait for messages: the client closes under it
    client.close()
    fetching.join()
    assert len(failures) == 1  # a worker stopping mid-fetch gets the transport's error
    client.close()
    with pytest.raises(TransportUnavailableError):
        client.publish(_raw(transport_settings), b"{}")


def test_threads_publishing_at_once_each_get_their_own_pubacks(
        js: JetStream, transport_settings: TransportSettings) -> None:
    """Intake answers requests on a thread pool: one client, many publishers at once."""
    acks: dict[str, PubAck] = {}

    def send(thread: int) -> None:
        for i in range(40):
            msg_id = f"s/{thread}-{i}"
            acks[msg_id] = js.publish(_raw(transport_settings), msg_id.encode(), msg_id=msg_id)

    threads = [threading.Thread(target=send, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(acks) == 320
    assert sorted(ack.seq for ack in acks.values()) == list(range(1, 321))
    consumer = js.consumer(transport_settings.stream("raw"), "archiver",
                           f"{transport_settings.namespace}.raw.>")
    stored = {m.stream_seq: m.data.decode() for m in _take(consumer, 320)}
    assert {seq: msg_id for msg_id, seq in ((k, a.seq) for k, a in acks.items())} == stored


def test_two_threads_fetching_from_one_consumer_share_the_messages(
        js: JetStream, transport_settings: TransportSettings) -> None:
    ns = transport_settings.namespace
    js.publish_many([Outgoing(raw_subject(ns, "s"), f"{i}".encode()) for i in range(300)])
    consumer = js.consumer(transport_settings.stream("raw"), "archiver", f"{ns}.raw.>")
    seen: list[int] = []

    def drain() -> None:
        batch = consumer.fetch(7, timeout_s=2)
        while batch:
            for message in batch:
                seen.append(message.stream_seq)
                message.ack()
            batch = consumer.fetch(7, timeout_s=0.5)

    threads = [threading.Thread(target=drain) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seen) == list(range(1, 301))


def test_a_client_whose_server_dies_goes_on_through_another(
        js: JetStream, transport_settings: TransportSettings, nats_cluster: NatsCluster) -> None:
    ns = transport_settings.namespace
    consumer = js.consumer(transport_settings.stream("events"), "p0", partition_filter(ns, 0))
    js.publish(event_subject(ns, "le_us", 0), b"before", msg_id="raw:1")
    assert [m.data for m in _take(consumer, 1)] == [b"before"]
    server = js.server
    assert server is not None
    victim = nats_cluster.urls.index(f"nats://{server}")
    nats_cluster.kill(victim)
    try:
        ack = js.publish(event_subject(ns, "le_us", 0), b"after", msg_id="raw:2", timeout_s=30)
        assert ack.seq == 2
        assert js.server not in (None, server)
        got = []
        for _ in range(STATUS_ATTEMPTS):  # the consumer's leader may be moving too
            got += consumer.fetch(10, timeout_s=0.5)
            if got:
                break
        assert [m.data for m in got] == [b"after"]  # "before" was not acked: ack_wait is 30 s
    finally:
        nats_cluster.restart(victim)


def test_a_client_cannot_cross_a_fork(js: JetStream,
                                      transport_settings: TransportSettings) -> None:
    def child() -> None:
        try:
            js.publish(_raw(transport_settings), b"{}")
        except RuntimeError:
            os._exit(3)
        os._exit(0)

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(30)
    assert process.exitcode == 3
    js.publish(_raw(transport_settings), b"{}")  # the parent's client still works


def test_a_lost_node_costs_no_pubacks_and_rejoins(
        js: JetStream, transport_settings: TransportSettings, nats_cluster: NatsCluster) -> None:
    raw = transport_settings.stream("raw")
    for i in range(50):
        js.publish(_raw(transport_settings), b"before", msg_id=f"s/{i}")
    leader = js.stream_status(raw).leader
    assert leader is not None
    victim = _index(leader)
    nats_cluster.kill(victim)  # the stream's leader: the worst node to lose
    try:
        # publish asks again while the two nodes left elect a leader: a client sees a
        # slow answer, not a refusal, when the election is shorter than the timeout
        first = js.publish(_raw(transport_settings), b"after", msg_id="s/50", timeout_s=30.0)
        assert first == PubAck(raw, 51, duplicate=False)
        for i in range(51, 200):
            ack = js.publish(_raw(transport_settings), b"after", msg_id=f"s/{i}")
            assert ack.seq == i + 1  # every one stored, on the two nodes left
        assert js.stream_status(raw).leader != leader
    finally:
        nats_cluster.restart(victim)
    status = _until_replicas_current(js, raw)
    assert status.messages == 200
    assert leader in {status.leader, *(peer.name for peer in status.replicas)}


def test_without_a_quorum_nothing_is_acked(
        js: JetStream, transport_settings: TransportSettings, nats_cluster: NatsCluster) -> None:
    js.publish(_raw(transport_settings), b"stored", msg_id="s/1")
    nats_cluster.kill(0)
    nats_cluster.kill(1)
    try:
        with pytest.raises(TransportUnavailableError):
            js.publish(_raw(transport_settings), b"lost?", msg_id="s/2", timeout_s=3.0)
        with pytest.raises(TransportUnavailableError):
            js.publish_many([Outgoing(_raw(transport_settings), b"lost?", msg_id="s/3")],
                            timeout_s=3.0)
    finally:
        nats_cluster.restart(0)
        nats_cluster.restart(1)
    # A refused publish may yet be stored (the client sent it, the answer was lost or
    # late): what the caller does is send it again with the same id, and each is stored once.
    for msg_id in ("s/2", "s/3"):
        js.publish(_raw(transport_settings), b"again", msg_id=msg_id, timeout_s=30.0)
    assert js.stream_status(transport_settings.stream("raw")).messages == 3


def _take(consumer: Consumer, count: int) -> list[Incoming]:
    """`count` messages, over as many fetches as it takes: a fetch returns what has
    arrived, which on a loaded machine may be part of what is there."""
    got: list[Incoming] = []
    for _ in range(STATUS_ATTEMPTS):
        got += consumer.fetch(count - len(got), timeout_s=1.0)
        if len(got) >= count:
            return got
    raise AssertionError(f"{len(got)} message(s) came, not {count}")


def _until_available(call: Callable[[], None]) -> None:
    for _ in range(STATUS_ATTEMPTS):
        try:
            call()
            return
        except TransportUnavailableError:
            time.sleep(0.25)
    raise AssertionError("JetStream stayed unavailable")


def _index(node_name: str) -> int:
    return int(node_name.removeprefix("n")) - 1


def _until_replicas_current(js: JetStream, stream: str) -> StreamStatus:
    """The stream's status once every replica is back and caught up (a restarted node
    catches up from the leader)."""
    for _ in range(STATUS_ATTEMPTS):
        try:
            status = js.stream_status(stream)
        except TransportUnavailableError:  # the stream may be electing a leader
            status = None
        if status is not None and len(status.replicas) == 2 and all(
                peer.current and not peer.offline for peer in status.replicas):
            return status
        time.sleep(0.25)
    raise AssertionError(f"the replicas of {stream} did not catch up")
