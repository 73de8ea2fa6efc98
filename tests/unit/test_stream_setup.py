"""A process starting while the cluster does not answer yet waits for it
(`streaming.setup.ensure_streams`), a bounded time; what a retry cannot fix fails at once."""

from __future__ import annotations

import pytest

from finsync.streaming.client import StreamSpec
from finsync.streaming.errors import TransportRefusedError, TransportUnavailableError
from finsync.streaming.settings import TransportSettings
from finsync.streaming.setup import ensure_streams


class Cluster:
    """Answers `ensure_stream` with `errors` first, then makes the stream."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.made: list[str] = []

    def ensure_stream(self, spec: StreamSpec) -> None:
        if self.errors:
            raise self.errors.pop(0)
        self.made.append(spec.name)


SETTINGS = TransportSettings(kind="nats", namespace="acme")
NO_LEADER = TransportUnavailableError("stream ACME_RAW: TimeoutError: nats: timeout")


def test_a_cluster_that_does_not_answer_yet_is_waited_for() -> None:
    cluster, slept = Cluster(NO_LEADER, NO_LEADER, NO_LEADER), []
    ensure_streams(cluster, SETTINGS, sleep=slept.append)
    assert cluster.made == ["ACME_RAW", "ACME_EVENTS", "ACME_OUT"]
    assert slept == [0.5, 1.0, 2.0]


def test_the_wait_is_bounded_and_a_refusal_is_not_waited_for() -> None:
    slept: list[float] = []
    with pytest.raises(TransportUnavailableError):
        ensure_streams(Cluster(*[NO_LEADER] * 100), SETTINGS,
                       wait_s=10.0, sleep=slept.append)
    assert slept == [0.5, 1.0, 2.0, 4.0, 4.0]  # past 10 s after the fifth: given up
    with pytest.raises(TransportRefusedError):
        ensure_streams(Cluster(TransportRefusedError("no"), NO_LEADER),
                       SETTINGS, sleep=slept.append)
