"""Events left on partitions the configuration no longer has.

Rules:
- Raising `partitions` loses nothing: the new partitions start empty, and an aggregate's
  versions already queued on its old partition are applied in order by the database's
  aggregate cursors whoever owns what. Lowering it would strand what still waits on the
  partitions above the new count: no worker consumes them any more.
- So a worker does not start while any partition at or above `partitions` holds events
  not yet acknowledged (by its durable consumer `p<N>`), or holds events and has never had
  a consumer; the message names them and says what to do (run with the old count until
  they drain). Acknowledged events the stream keeps for its retention are not waiting.
"""

from __future__ import annotations

import re

from finsync.streaming.client import JetStream
from finsync.streaming.errors import TransportRefusedError
from finsync.streaming.settings import TransportSettings
from finsync.streaming.subjects import events_filter

_DURABLE = re.compile(r"^p(\d+)$")
SHOWN_MAX = 8  # partitions named in the message


class PartitionsStrandedError(TransportRefusedError):
    code = "partitions_stranded"


def stranded(js: JetStream, settings: TransportSettings) -> dict[int, int]:
    """Events waiting on partitions at or above `settings.partitions`, by partition."""
    stream = settings.stream("events")
    waiting: dict[int, int] = {}
    consumed: set[int] = set()
    for durable, lag in js.consumer_lags(stream).items():
        found = _DURABLE.match(durable)
        if found is None:
            continue
        partition = int(found.group(1))
        consumed.add(partition)
        if partition >= settings.partitions and lag.num_pending + lag.num_ack_pending:
            waiting[partition] = lag.num_pending + lag.num_ack_pending
    for subject, count in js.subject_counts(stream, events_filter(settings.namespace)).items():
        partition = int(subject.rsplit(".", 1)[1])
        if partition >= settings.partitions and partition not in consumed:
            waiting[partition] = waiting.get(partition, 0) + count
    return dict(sorted(waiting.items()))


def refuse_if_stranded(js: JetStream, settings: TransportSettings) -> None:
    waiting = stranded(js, settings)
    if not waiting:
        return
    shown = ", ".join(f"{p} ({n})" for p, n in list(waiting.items())[:SHOWN_MAX])
    more = "" if len(waiting) <= SHOWN_MAX else f" and {len(waiting) - SHOWN_MAX} more"
    raise PartitionsStrandedError(
        f"[transport] partitions = {settings.partitions}, but partitions {shown}{more} still "
        f"hold events no worker has acknowledged (event counts in brackets): run the workers "
        f"with partitions = {max(waiting) + 1} until `finsync cluster status` shows them "
        f"drained, then lower it")
