"""The HTTP API. Intake answers 202 only after the raw request is committed; a payload that
cannot be mapped is kept too, and answered with a 4xx and a machine-readable code.

Handlers that touch the database are plain `def`: FastAPI runs them in its thread pool, so a
slow commit never blocks the event loop. The one async step, reading the request body, is
the `_body` dependency, which FastAPI awaits before the handler runs.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from finsync.api.errors import error_body, finsync_error_handler
from finsync.domain.errors import FinsyncError
from finsync.domain.status import ExceptionStatus
from finsync.hub.service import Hub
from finsync.hub.webhook import WebhookIntake

# Credentials are never stored with the raw event; signature headers are (for audit).
_UNSTORED_HEADERS = {"authorization", "cookie", "proxy-authorization", "x-api-key"}


def _stored_headers(request: Request) -> dict[str, str]:
    return {k: v for k, v in request.headers.items() if k.lower() not in _UNSTORED_HEADERS}


async def _body(request: Request) -> bytes:
    return await request.body()


Body = Annotated[bytes, Depends(_body)]


class PipelineThread(threading.Thread):
    """Runs the hub until idle every `interval_s`, and the daily job (reconciliation as of
    yesterday) once per day of the hub's clock, until the app stops."""

    def __init__(self, hub: Hub, interval_s: float,
                 daily: Callable[[date], object] | None = None) -> None:
        super().__init__(name="finsync-pipeline", daemon=True)
        self.hub, self.interval_s, self.stopping = hub, interval_s, threading.Event()
        self.daily = daily
        self.last_daily: date | None = None

    def run(self) -> None:
        while not self.stopping.wait(self.interval_s):
            self.hub.run_until_idle()
            today = self.hub.clock().date()
            if self.daily is not None and self.last_daily != today:
                self.daily(today - timedelta(days=1))
                self.last_daily = today


def create_app(hub: Hub, *, worker_interval_s: float | None = None,
               metrics: Callable[[], str] | None = None,
               daily: Callable[[date], object] | None = None,
               webhooks: Mapping[str, WebhookIntake] | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        worker = PipelineThread(hub, worker_interval_s, daily) if worker_interval_s else None
        if worker:
            worker.start()
        yield
        if worker:
            worker.stopping.set()
            worker.join(timeout=30)

    app = FastAPI(title="finsync", version="0.1.0", lifespan=lifespan)
    app.add_exception_handler(FinsyncError, finsync_error_handler)

    @app.post("/v1/sources/{source}/events", status_code=202)
    def receive(source: str, request: Request, body: Body) -> JSONResponse:
        raw_id = hub.intake.receive(source, body, _stored_headers(request),
                                    request.headers.get("content-type"))
        return JSONResponse({"raw_event_id": raw_id, "status": "stored"}, status_code=202)

    @app.post("/v1/webhooks/stripe/{source}")
    def stripe_webhook(source: str, request: Request, body: Body) -> JSONResponse:
        """Stripe's webhook endpoint: verified, stored, then 200 as Stripe expects."""
        intake = (webhooks or {}).get(source)
        if intake is None:
            return JSONResponse(error_body("unknown_source", f"no Stripe source {source!r}"),
                                status_code=404)
        raw_id = intake.receive(body, dict(request.headers),
                                request.headers.get("content-type"))
        return JSONResponse({"received": True, "raw_event_id": raw_id})

    @app.get("/v1/status")
    def status() -> dict[str, Any]:
        return hub.status()

    @app.get("/v1/exceptions")
    def exceptions(status: str | None = ExceptionStatus.OPEN.value,
                   klass: str | None = None) -> dict[str, Any]:
        rows = hub.exceptions(None if status == "all" else status, klass)
        return {"exceptions": rows, "count": len(rows)}

    @app.get("/v1/correlations/{correlation_id}/milestones")
    def milestones(correlation_id: str) -> dict[str, Any]:
        return {"correlation_id": correlation_id, "milestones": hub.timeline(correlation_id),
                **hub.transaction_status(correlation_id)}

    @app.get("/metrics", response_class=PlainTextResponse)
    def prometheus() -> str:
        if metrics is None:
            raise FinsyncError("metrics are not configured for this app")
        return metrics()

    @app.get("/healthz")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
