"""The cluster's Prometheus metrics, from one `cluster.survey` (the same figures as
`finsync cluster status`), appended to the DESIGN §7 metrics of `GET /metrics` when the
transport is NATS.

Rules:
- A partition whose consumer is not made yet has no lag sample (absent, not zero), and an
  unowned partition no owner sample: an alert on `absent(...)` or on
  `count(finsync_partition_owner_info) < partitions` sees it.
- Every singleton lease (`relay`, `duties`, `daily`) has a `finsync_duty_held` sample, 0
  while nobody holds it (an alert needs no `absent`), and its holder an info sample; a live
  worker that declines a duty (`--no-daily`, no finance stack) an info sample of its own.
- Label values are escaped as the text format asks (a worker names itself).
"""

from __future__ import annotations

from finsync.hub.metrics import family
from finsync.streaming.cluster import ClusterStatus


def label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def as_prometheus(status: ClusterStatus) -> str:
    lags = [(p.number, p.lag) for p in status.partitions if p.lag is not None]
    lines: list[str] = []
    lines += family("finsync_partition_lag", "gauge",
                    "Canonical events of a partition not yet accepted (pending + unacked)",
                    ((f'partition="{n}"', lag.behind) for n, lag in lags))
    lines += family("finsync_partition_redelivered", "gauge",
                    "Messages of a partition handed out more than once, since its consumer "
                    "was made", ((f'partition="{n}"', lag.redelivered) for n, lag in lags))
    lines += family("finsync_partition_owner_info", "gauge",
                    "The worker that owns a partition (1 per owned partition)",
                    ((f'partition="{p.number}",owner="{label(p.owner)}"', 1)
                     for p in status.partitions if p.owner is not None))
    lines += family("finsync_partitions_unowned", "gauge", "Partitions no worker owns",
                    [("", len(status.unowned))])
    lines += family("finsync_cluster_nodes", "gauge", "Workers alive (heartbeat in the KV)",
                    [("", len(status.nodes))])
    lines += family("finsync_duty_held", "gauge",
                    "Whether a worker holds the lease of a duty one worker does at a time",
                    ((f'duty="{lease}"', int(holder is not None))
                     for lease, holder in status.holders))
    lines += family("finsync_duty_holder_info", "gauge",
                    "The worker that holds a duty's lease (1 per held duty)",
                    ((f'duty="{lease}",holder="{label(holder)}"', 1)
                     for lease, holder in status.holders if holder is not None))
    lines += family("finsync_duty_declined_info", "gauge",
                    "A live worker that does not take a duty (1 per worker and duty)",
                    ((f'node="{label(node.name)}",duty="{label(duty)}"', 1)
                     for node in status.nodes for duty, _why in node.declined))
    if status.archiver is not None:
        lines += family("finsync_archiver_lag", "gauge",
                        "Raw events received by intake and not yet stored by an archiver",
                        [("", status.archiver.behind)])
    lines += family("finsync_events_out_lag", "gauge",
                    "Accepted events and milestones not yet published on events out",
                    [("", status.relay_behind)])
    return "\n".join(lines) + "\n"
