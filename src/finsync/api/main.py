"""The ASGI factory `finsync serve` (or any ASGI server) loads by name, and the pipeline's
own process for `serve --workers N`.

`FINSYNC_PIPELINE` says whether the app's process runs the pipeline too: `on` (the default,
one process) or `off` (HTTP only). `serve --workers N` (N > 1) runs N HTTP-only processes and
the pipeline in one process of its own (`run_pipeline`), so that deliveries and HTTP never
share an interpreter lock. HTTP processes wake it after each committed batch through the
database (PostgreSQL's notification); otherwise it polls every `FINSYNC_WORKER_INTERVAL_S`.

`FINSYNC_ROLE` says what the process is: `all` (the default, the above) or `intake`, an
intake node (`serve --role intake`, `[transport] kind = "nats"`): event intake
(`/v1/sources/<source>/events`) checked as everywhere and published to the replicated raw
stream, no pipeline, no console; of event intake it stores nothing but refusals (the
archivers of the workers store what it published). Signed webhooks and meter events are
still stored in the database as without a transport (their observers and meter tables are
the database's): a process that runs the in-process processor must run beside them.
"""

from __future__ import annotations

import os
import signal
import threading
from datetime import timedelta
from types import FrameType

from fastapi import FastAPI

from finsync.api.app import create_app, pipeline_supervisor
from finsync.bootstrap import (
    approved_config,
    build_daily,
    build_finance,
    build_held_retry,
    build_metrics,
    build_raw_publisher,
    build_usage,
    build_webhooks,
)
from finsync.config import env_switch, load_config
from finsync.hub import logfilter
from finsync.hub.pipeline import SERVE_PID_ENV
from finsync.views.services import build_services


def _interval_s() -> float:
    return float(os.environ.get("FINSYNC_WORKER_INTERVAL_S", "1"))


ROLES = ("all", "intake")


def _role() -> str:
    role = os.environ.get("FINSYNC_ROLE", "all")
    if role not in ROLES:
        raise ValueError(f"FINSYNC_ROLE must be one of {', '.join(ROLES)}, not {role!r}")
    return role


def app_from_environment() -> FastAPI:
    """The app for `FINSYNC_CONFIG`, with its pipeline worker every `FINSYNC_WORKER_INTERVAL_S`
    unless `FINSYNC_PIPELINE` is `off`, the daily job in it unless `FINSYNC_DAILY` is `off`
    (reconciliation then runs when `finsync reconcile` is run, from cron say), and each
    intake source's input limits (`[limits]`); an intake node when `FINSYNC_ROLE` is
    `intake`."""
    pipeline, daily = env_switch("FINSYNC_PIPELINE"), env_switch("FINSYNC_DAILY")
    config = load_config()
    finance = build_finance(config)
    hub = finance.hub
    approved_config(config, hub.engine, hub.clock)  # routes, ownership, thresholds approved
    if _role() == "intake":
        return create_app(hub, metrics=build_metrics(finance), audit=finance.audit,
                          webhooks=build_webhooks(config, hub.engine),
                          limits_for=config.limits_for,
                          usage=build_usage(config, hub.engine, hub.clock),
                          publisher=build_raw_publisher(config))
    return create_app(hub, worker_interval_s=_interval_s() if pipeline else None,
                      metrics=build_metrics(finance, config),
                      daily=build_daily(finance) if daily else None, audit=finance.audit,
                      webhooks=build_webhooks(config, hub.engine),
                      limits_for=config.limits_for,
                      usage=build_usage(config, hub.engine, hub.clock),
                      held=build_held_retry(finance) if pipeline else None,
                      services=build_services(config, finance),
                      idle_timeout=timedelta(minutes=config.console.idle_timeout_min),
                      session_lifetime=timedelta(hours=config.console.session_max_h))


PARENT_CHECK_S = 1.0


def run_pipeline() -> None:
    """The pipeline alone, supervised, until SIGTERM or SIGINT, or until the process that
    started it (`serve`) is gone."""
    logfilter.install()
    config = load_config()
    finance = build_finance(config)
    hub = finance.hub
    approved_config(config, hub.engine, hub.clock)
    supervisor = pipeline_supervisor(hub, _interval_s(),
                                     build_daily(finance) if env_switch("FINSYNC_DAILY") else None,
                                     build_usage(config, hub.engine, hub.clock),
                                     held=build_held_retry(finance))
    stopping = threading.Event()

    def stop(_signal: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # `serve` stops this process when it stops, but not always: uvicorn re-raises the
    # SIGTERM it handled once it has shut down, which ends `serve` before its own clean-up,
    # and a SIGKILL allows none. So the pipeline also ends once `serve` is gone.
    parent = int(os.environ.get(SERVE_PID_ENV) or os.getppid())
    supervisor.start()
    try:
        while not stopping.wait(min(supervisor.check_s, PARENT_CHECK_S)):
            if os.getppid() != parent:
                break
            supervisor.check()
    finally:
        supervisor.stop()
        finance.dispose()
