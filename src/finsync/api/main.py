"""The ASGI factory `finsync serve` (or any ASGI server) loads by name.

`FINSYNC_PIPELINE` says whether this process runs the pipeline: `on` (the default), `off`
(HTTP only), or `elect:<lock file>` when `serve --workers N` starts several processes: the
one that takes the lock file's exclusive lock runs it, the others serve HTTP only. A process
that ends releases its lock, and the process started in its place takes it.
"""

from __future__ import annotations

import fcntl
import os
from typing import IO

from fastapi import FastAPI

from finsync.api.app import create_app
from finsync.bootstrap import build_finance, build_metrics, build_usage, build_webhooks
from finsync.config import load_config

_held: list[IO[bytes]] = []  # the elected process keeps its lock file open while it lives


def app_from_environment() -> FastAPI:
    """The app for `FINSYNC_CONFIG`, with its pipeline worker every `FINSYNC_WORKER_INTERVAL_S`
    when this process runs the pipeline (`FINSYNC_PIPELINE`), and each intake source's input
    limits (`[limits]`)."""
    interval_s = float(os.environ.get("FINSYNC_WORKER_INTERVAL_S", "1"))
    config = load_config()
    finance = build_finance(config)
    hub = finance.hub
    runs_pipeline = _runs_pipeline(os.environ.get("FINSYNC_PIPELINE", "on"))
    return create_app(hub, worker_interval_s=interval_s if runs_pipeline else None,
                      metrics=build_metrics(finance),
                      daily=finance.recon.run, webhooks=build_webhooks(config, hub.engine),
                      limits_for=config.limits_for,
                      usage=build_usage(config, hub.engine, hub.clock))


def _runs_pipeline(mode: str) -> bool:
    if mode in {"on", "off"}:
        return mode == "on"
    kind, _, path = mode.partition(":")
    if kind != "elect" or not path:
        raise ValueError(f"FINSYNC_PIPELINE must be on, off or elect:<lock file>, not {mode!r}")
    lock = open(path, "ab")  # noqa: SIM115 - held open for the life of the process
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        return False
    _held.append(lock)
    return True
