"""`finsync worker`: a partitioned worker of the NATS transport (DESIGN §8, issue 20).

Rules:
- It needs `[transport] kind = "nats"`, the `admin` scope and the approved configuration
  (it runs the pipeline, as `serve` does).
- `--partitions 0-3,7` names the partitions it owns (it waits for any another worker
  holds); without it, the live workers share them out (`streaming.ownership`).
- It takes the cluster's `daily` duty (the daily job, held invoices retried) in turn with
  the others unless `--no-daily` or its configuration builds no finance stack: then it
  says so once when it starts, and in its heartbeat (`finsync cluster status`).
- SIGTERM or SIGINT stops it cleanly: each partition finishes its batch, the leases are
  released (the other workers take the partitions at their next round), the delivery in
  progress ends. After a SIGKILL its leases run out after `lease_ttl_s` instead.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from finsync.auth.principal import ADMIN
from finsync.bootstrap import approved_config, build_worker, build_worker_stack, worker_name
from finsync.cli import output
from finsync.cli.common import ConfigPath, Json, authorised, daemon_log, guarded
from finsync.config import env_switch, load_config
from finsync.streaming.ownership import format_partitions

if TYPE_CHECKING:  # nats-py loads only when a worker starts (`bootstrap.build_worker`)
    from finsync.streaming.worker import WorkerNode

CHECK_S = 1.0  # how often dead threads are started again


def command(partitions: Annotated[str | None, typer.Option(
                help="The partitions to own, e.g. 0-3,7 (default: a share of the live "
                     "workers').")] = None,
            name: Annotated[str | None, typer.Option(
                help="This worker's name, unique in the cluster (default: host-pid).")]
            = None,
            daily: Annotated[bool, typer.Option(
                help="Take the cluster's daily job (reconciliation, audit checkpoint, call "
                     "log purge) and held-invoice retry in turn with the other workers; "
                     "--no-daily (or FINSYNC_DAILY=off, as for serve) where a scheduler "
                     "runs finsync reconcile.")] = True,
            config: ConfigPath = None, as_json: Json = False) -> None:
    """Process the partitions of the NATS transport: archive raw events, accept the owned
    partitions' events, deliver their deliveries, take the cluster's duties in turn; until
    SIGTERM or SIGINT."""
    with guarded(as_json), daemon_log():
        loaded = load_config(config)
        authorised(loaded, ADMIN)
        stack = build_worker_stack(loaded, daily=daily and env_switch("FINSYNC_DAILY"))
        try:
            approved_config(loaded, stack.hub.engine, stack.hub.clock)
            node, js = build_worker(loaded, stack, name or worker_name(), partitions)
            if stack.without_daily is not None:
                output.note(f"worker {node.name} runs without the daily duty: "
                            f"{stack.without_daily}")
            try:
                run_until_signalled(node)
            finally:
                js.close()
        finally:
            stack.dispose()
        if as_json:
            output.emit_json({"worker": node.name, "stopped": True,
                              "without_daily": stack.without_daily})


def run_until_signalled(node: WorkerNode) -> None:
    """Start the worker, restart its dead threads every `CHECK_S`, stop it cleanly on
    SIGTERM or SIGINT."""
    stopping = threading.Event()

    def stop(_signal: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    node.start()
    wanted = "a share" if node.leases.me.explicit is None else format_partitions(
        node.leases.me.explicit)
    output.note(f"worker {node.name} started ({wanted}); owns "
                f"{format_partitions(node.leases.owned)}")
    try:
        while not stopping.wait(CHECK_S):
            node.check()
    finally:
        node.stop()
        output.note(f"worker {node.name} stopped; its leases are released")
