"""Lowering `[transport] partitions` while partitions above the new count still hold events
would strand them: a worker refuses to start, naming them (`streaming.stranded`)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from finsync.streaming.client import JetStream, Outgoing
from finsync.streaming.settings import TransportSettings
from finsync.streaming.setup import ensure_streams
from finsync.streaming.stranded import PartitionsStrandedError, refuse_if_stranded, stranded
from finsync.streaming.subjects import event_subject, partition_filter


def _publish(js: JetStream, ns: str, partition: int, count: int) -> None:
    js.publish_many([Outgoing(event_subject(ns, "le_us", partition), b"e")
                     for _ in range(count)])


def test_events_waiting_above_the_new_count_stop_a_worker(
        transport_settings: TransportSettings) -> None:
    eight = replace(transport_settings, partitions=8)
    with JetStream(eight, "test") as js:
        ensure_streams(js, eight)
        _lowered_to_four(js, eight)


def _lowered_to_four(js: JetStream, eight: TransportSettings) -> None:
    ns, stream = eight.namespace, eight.stream("events")
    for partition, count in ((1, 2), (5, 3), (6, 1), (7, 4)):
        _publish(js, ns, partition, count)
    for partition in (1, 5, 6):  # 7 never had a consumer: all its events wait
        js.consumer(stream, f"p{partition}", partition_filter(ns, partition))
    five = js.consumer(stream, "p5", partition_filter(ns, 5))
    five.ack_all(five.fetch(3, timeout_s=2.0))  # drained
    six = js.consumer(stream, "p6", partition_filter(ns, 6))
    assert len(six.fetch(1, timeout_s=2.0)) == 1  # delivered, not acked: still waiting

    four = replace(eight, partitions=4)
    assert stranded(js, four) == {6: 1, 7: 4}
    with pytest.raises(PartitionsStrandedError, match=r"partitions 6 \(1\), 7 \(4\) still") as e:
        refuse_if_stranded(js, four)
    assert "partitions = 8 until" in str(e.value)
    assert e.value.code == "partitions_stranded"
    assert stranded(js, eight) == {}  # raising or keeping the count strands nothing
    refuse_if_stranded(js, replace(eight, partitions=16))
