"""The ASGI factory `finsync serve` (or any ASGI server) loads by name."""

from __future__ import annotations

import os

from fastapi import FastAPI

from finsync.api.app import create_app
from finsync.bootstrap import build_finance, build_metrics, build_webhooks
from finsync.config import load_config


def app_from_environment() -> FastAPI:
    """The app for `FINSYNC_CONFIG`, with its pipeline worker every `FINSYNC_WORKER_INTERVAL_S`
    and each intake source's input limits (`[limits]`)."""
    interval_s = float(os.environ.get("FINSYNC_WORKER_INTERVAL_S", "1"))
    config = load_config()
    finance = build_finance(config)
    hub = finance.hub
    return create_app(hub, worker_interval_s=interval_s, metrics=build_metrics(finance),
                      daily=finance.recon.run, webhooks=build_webhooks(config, hub.engine),
                      limits_for=config.limits_for)
