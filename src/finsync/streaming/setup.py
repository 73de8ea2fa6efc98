"""The streams of a namespace, made or brought to their configuration at start-up.

Rules:
- Three streams per namespace, each on file storage with `settings.replicas` replicas, the
  namespace's duplicate window and retention: `<NS>_RAW` (`<ns>.raw.>`: raw bodies as
  intake received them), `<NS>_EVENTS` (`<ns>.events.>`: canonical envelopes by entity and
  partition) and `<NS>_OUT` (`<ns>.out.>`: events and milestones for downstream readers).
- `ensure_streams` is idempotent: every process runs it at start, any number at once; a
  stream that exists as specified is left alone, one configured otherwise is updated.
"""

from __future__ import annotations

from finsync.streaming import subjects
from finsync.streaming.client import JetStream, StreamSpec
from finsync.streaming.settings import TransportSettings

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


def ensure_streams(js: JetStream, settings: TransportSettings) -> None:
    for spec in stream_specs(settings):
        js.ensure_stream(spec)
