"""The streams of a namespace, made or brought to their configuration at start-up.

Rules:
- Three streams per namespace, each on file storage with `settings.replicas` replicas, the
  namespace's duplicate window and retention: `<NS>_RAW` (`<ns>.raw.>`: raw bodies as
  intake received them), `<NS>_EVENTS` (`<ns>.events.>`: canonical envelopes by entity and
  partition) and `<NS>_OUT` (`<ns>.out.>`: events and milestones for downstream readers).
- `ensure_streams` is idempotent: every process runs it at start, any number at once; a
  stream that exists as specified is left alone, one configured otherwise is updated.
- It waits out a cluster that does not answer yet (a node restarting, a leader being
  elected: a transient error), `wait_s` at most, so a process started then (an intake node
  restarted after a crash, say) comes up instead of exiting.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from finsync.domain.errors import TransientError
from finsync.streaming import subjects
from finsync.streaming.client import JetStream, StreamSpec
from finsync.streaming.settings import TransportSettings

log = logging.getLogger(__name__)

START_WAIT_S = 60.0
PAUSE_FIRST_S, PAUSE_MAX_S = 0.5, 4.0
RAW = "raw"
EVENTS = "events"
OUT = "out"


def stream_specs(settings: TransportSettings) -> tuple[StreamSpec, ...]:
    ns = settings.namespace
    filters = {RAW: subjects.raw_filter(ns), EVENTS: subjects.events_filter(ns),
               OUT: subjects.out_filter(ns)}
    return tuple(
        StreamSpec(settings.stream(suffix), (subject,), settings.replicas,
                   settings.duplicate_window_s, settings.retention_s)
        for suffix, subject in filters.items())


def ensure_streams(js: JetStream, settings: TransportSettings, *,
                   wait_s: float = START_WAIT_S,
                   sleep: Callable[[float], None] = time.sleep) -> None:
    waited, pause = 0.0, PAUSE_FIRST_S
    for spec in stream_specs(settings):
        while True:
            try:
                js.ensure_stream(spec)
                break
            except TransientError as exc:
                if waited >= wait_s:
                    raise
                log.info("stream %s: waiting for the cluster: %s", spec.name, exc)
                sleep(pause)
                waited += pause
                pause = min(2 * pause, PAUSE_MAX_S)
