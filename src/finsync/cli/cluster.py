"""`finsync cluster`: the NATS JetStream cluster's state as an operator reads it (nodes,
partitions and their owners, consumer lag, redeliveries, the events-out relay, the holder
of each duty and the workers that decline one). Needs `[transport] kind = "nats"` and
`finance:read`."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import typer

from finsync.auth.principal import FINANCE_READ
from finsync.bootstrap import survey_cluster
from finsync.cli import output
from finsync.cli.common import ConfigPath, Json, authorised, guarded
from finsync.config import load_config

if TYPE_CHECKING:  # nats-py loads only when the command runs
    from finsync.streaming.cluster import ClusterStatus, Lag

app = typer.Typer(help="The NATS JetStream cluster ([transport] kind = \"nats\").",
                  no_args_is_help=True)


@app.command()
def status(config: ConfigPath = None, as_json: Json = False) -> None:
    """Nodes, partitions with their owners, consumer lag and redeliveries per partition, the
    archiver's lag, how far events out is behind the event log, who holds each duty."""
    with guarded(as_json):
        loaded = load_config(config)
        authorised(loaded, FINANCE_READ)
        found = survey_cluster(loaded)
    if as_json:
        output.emit_json(found.as_json())
        return
    _show(found)


def _show(found: ClusterStatus) -> None:
    now = found.measured_at
    output.table(f"Nodes ({len(found.nodes)}) — namespace {found.namespace}",
                 ["node", "up", "owns", "assigned"],
                 [[n.name, _age(n.started_at, now), _numbers(n.partitions),
                   "automatic" if n.explicit is None else _numbers(n.explicit)]
                  for n in found.nodes])
    output.table("Partitions", ["partition", "owner", "pending", "unacked", "redelivered"],
                 [[p.number, p.owner or "— unowned", *_lag_cells(p.lag)]
                  for p in found.partitions])
    output.table("Pipeline", ["", "owner", "behind", "redelivered"], [
        ["archiver (raw → database)", "any worker", *_behind(found.archiver)],
        [f"events out (database → {found.namespace}.out)", found.relay_owner or "— none",
         found.relay_behind, ""],
    ])
    output.table("Duties (one worker at a time)", ["lease", "holder", "declined by"],
                 [[lease, holder or "— none", ", ".join(
                     n.name for n in found.declining(lease)) or "-"]
                  for lease, holder in found.holders])
    if found.unowned:
        output.note(f"partitions without an owner: {_numbers(found.unowned)}")
    for node in found.nodes:
        for duty, why in node.declined:
            output.note(f"{node.name} runs without the {duty} duty: {why}")


def _lag_cells(lag: Lag | None) -> list[object]:
    if lag is None:
        return ["no consumer", "", ""]
    return [lag.pending, lag.ack_pending, lag.redelivered]


def _behind(lag: Lag | None) -> list[object]:
    if lag is None:
        return ["no consumer", ""]
    return [lag.behind, lag.redelivered]


def _age(started_at: datetime | None, now: datetime) -> str:
    if started_at is None:
        return "?"
    return output.duration(int((now - started_at).total_seconds()))


def _numbers(numbers: tuple[int, ...]) -> str:
    return ",".join(str(n) for n in numbers) or "-"
