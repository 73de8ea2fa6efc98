"""The HTTP API. Intake answers 202 only after the raw request is committed; a payload that
cannot be mapped is kept too, and answered with a 4xx and a machine-readable code.

Handlers that touch the database are plain `def`: FastAPI runs them in its thread pool, so a
slow commit never blocks the event loop. Intake group-commits (`hub.group_commit`): each
request is mapped in its own thread, then stored with the requests that arrived with it in
one transaction by the app's writer thread, and answered after that commit; each committed
batch wakes the pipeline (`wake`, and this process's pipeline worker when it runs one).

The one async step is the `_admitted` dependency, which FastAPI awaits before the handler
runs: the source's rate limit (429 `rate_limited`, with `Retry-After`), then its body, read
while counting and no further than the source's `body_max_bytes` (413 `body_too_large`; the
refusal is recorded by the handler, the body never). Limits are per source (`limits_for`,
from the configuration).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from datetime import date
from typing import Annotated, Any, NoReturn

import anyio.to_thread
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException

from finsync.api.errors import (
    finsync_error_handler,
    http_error_handler,
    validation_error_handler,
)
from finsync.domain.errors import ExceptionClass, FinsyncError, MappingError, SignatureError
from finsync.domain.limits import InputLimits
from finsync.hub.group_commit import BATCH_MAX, LINGER_S, GroupCommit
from finsync.hub.intake import (
    UNKNOWN_SOURCES,
    BodyTooLargeError,
    Intake,
    RateLimiter,
    Refusal,
)
from finsync.hub.pipeline import PipelineWorker, Supervisor, hub_pipeline
from finsync.hub.service import Hub
from finsync.hub.status import UNRESOLVED_FILTER
from finsync.hub.usage import UsageIntake
from finsync.hub.webhook import WebhookIntake

# Credentials are never stored with the raw event; signature headers are (for audit).
_UNSTORED_HEADERS = {"authorization", "cookie", "proxy-authorization", "x-api-key"}


def _stored_headers(request: Request) -> dict[str, str]:
    return {k: v for k, v in request.headers.items() if k.lower() not in _UNSTORED_HEADERS}


LimitsFor = Callable[[str], InputLimits]


def _default_limits(_source: str) -> InputLimits:
    return InputLimits()


async def _read_within(request: Request, limit: int) -> bytes | BodyTooLargeError:
    """The body, counted as it streams in; the rest is not read once `limit` is passed (none
    of it when Content-Length already says it is too large)."""
    declared = request.headers.get("content-length", "")
    plausible = declared.isascii() and declared.isdigit() and len(declared) < 19
    if plausible and int(declared) > limit:
        return BodyTooLargeError(limit, int(declared), declared=True)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return BodyTooLargeError(limit)
        chunks.append(chunk)
    return b"".join(chunks)


class Admission:
    """The source's rate limit, then its body within limits. Known sources have a bucket
    each; every unknown name shares one."""

    def __init__(self, limits_for: LimitsFor, known: Callable[[str], bool]) -> None:
        self.limits_for, self.known, self.limiter = limits_for, known, RateLimiter()

    async def admit(self, source: str, request: Request) -> bytes | BodyTooLargeError:
        limits = self.limits_for(source)
        self.limiter.take(source if self.known(source) else UNKNOWN_SOURCES, limits)
        return await _read_within(request, limits.body_max_bytes)


async def _admitted(source: str, request: Request) -> bytes | BodyTooLargeError:
    admission: Admission = request.app.state.admission
    return await admission.admit(source, request)


Body = Annotated[bytes | BodyTooLargeError, Depends(_admitted)]
# The body is read by `_admitted`, not declared as a parameter: say in the OpenAPI what it is.
_ANY_JSON_BODY = {"requestBody": {"required": True,
                                  "content": {"application/json": {"schema": {}}}}}


def _refuse(intake: Intake, refusal: Refusal) -> NoReturn:
    intake.refuse(refusal)
    raise refusal.error


USAGE = "finsync-usage"
HANDLER_THREADS_MIN = 128


def _allow_waiting_threads(batch_max: int) -> None:
    """Intake handlers spend their thread waiting for a shared commit: allow enough of
    them (anyio's default is 40) that a slow commit queues requests in the batch, not in
    front of the thread pool."""
    limiter = anyio.to_thread.current_default_thread_limiter()
    limiter.total_tokens = max(limiter.total_tokens, HANDLER_THREADS_MIN, batch_max)


def pipeline_supervisor(hub: Hub, interval_s: float,
                        daily: Callable[[date], object] | None = None,
                        usage: UsageIntake | None = None,
                        usage_interval_s: float = 10.0) -> Supervisor:
    """The pipeline's threads: the hub, the daily reconciliation (a thread of its own, never
    inside the delivery loop) and, with usage intake, the totals of settled days handed to
    billing every `usage_interval_s`."""
    pipeline = hub_pipeline(hub, interval_s, daily)
    if usage is None:
        return pipeline
    return Supervisor([*pipeline.workers, PipelineWorker(
        USAGE, usage.step, hub.clock, usage_interval_s)], pipeline.check_s,
        on_stop=(hub.wakeup.close,))  # the listener of `hub_pipeline`, closed with usage too


def _waker(hub: Hub,
           wake: Callable[[int], None] | None) -> Callable[[int], None] | None:
    """What a committed intake batch of `count` raw events calls: the pipeline's wake-up,
    then `wake`."""
    calls = [call for call in (_pipeline_wakeup(hub), wake) if call is not None]
    if not calls:
        return None

    def wake_all(count: int) -> None:
        for call in calls:
            call(count)
    return wake_all


def _pipeline_wakeup(hub: Hub) -> Callable[[int], None]:
    """The one call site of the pipeline's wake-up."""
    return hub.wakeup.notify


async def _supervise(pipeline: Supervisor) -> None:
    """Restart dead pipeline threads every `check_s`: recovery never waits for a probe to
    ask `/healthz`, which stays a plain report."""
    while True:
        await asyncio.sleep(pipeline.check_s)
        pipeline.check()


def create_app(hub: Hub, *, worker_interval_s: float | None = None,
               metrics: Callable[[], str] | None = None,
               daily: Callable[[date], object] | None = None,
               webhooks: Mapping[str, WebhookIntake] | None = None,
               limits_for: LimitsFor | None = None,
               wake: Callable[[int], None] | None = None,
               batch_max: int = BATCH_MAX, linger_s: float = LINGER_S,
               usage: UsageIntake | None = None, usage_interval_s: float = 10.0) -> FastAPI:
    """The app. `worker_interval_s` runs the pipeline in this process (None: another process
    runs it); `wake(count)` is called after every committed intake batch of `count` raw
    events (the pipeline of this process is woken anyway)."""
    signed = dict(webhooks or {})
    limits = limits_for or _default_limits

    # The pipeline (and the daily job, in a thread of its own), supervised: `finsync serve`.
    pipeline = None
    if worker_interval_s:
        pipeline = pipeline_supervisor(hub, worker_interval_s, daily, usage, usage_interval_s)
    writer = GroupCommit(hub.intake, batch_max=batch_max, linger_s=linger_s,
                         on_commit=_waker(hub, wake))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        _allow_waiting_threads(batch_max)
        if pipeline is None:
            try:
                yield
            finally:
                writer.close()
            return
        pipeline.start()
        supervising = asyncio.create_task(_supervise(pipeline))
        try:
            yield
        finally:
            supervising.cancel()
            with suppress(asyncio.CancelledError):
                await supervising
            writer.close()
            pipeline.stop()

    app = FastAPI(title="finsync", version="0.1.0", lifespan=lifespan)
    app.state.pipeline = pipeline  # None when this process runs no pipeline
    app.state.intake_writer = writer
    app.add_exception_handler(FinsyncError, finsync_error_handler)
    app.add_exception_handler(HTTPException, http_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.state.admission = Admission(limits, lambda s: hub.mappers.knows(s) or s in signed
                                    or (usage is not None and usage.knows(s)))

    @app.post("/v1/sources/{source}/events", status_code=202, openapi_extra=_ANY_JSON_BODY)
    def receive(source: str, request: Request, body: Body) -> JSONResponse:
        """A source's event(s). A signed source is taken only at its signed endpoint."""
        headers, content_type = _stored_headers(request), request.headers.get("content-type")
        if isinstance(body, BodyTooLargeError):
            _refuse(hub.intake, Refusal(source, body, ExceptionClass.MAPPING_ERROR, None,
                                        headers, content_type))
        if source in signed:
            unsigned = SignatureError(f"source {source!r} takes signed requests only, at "
                                      f"/v1/webhooks/stripe/{source}", code="signature_missing")
            signed[source].refuse(unsigned, body, headers, content_type)
            raise unsigned
        raw_id = writer.receive(source, body, headers, content_type, limits(source))
        return JSONResponse({"raw_event_id": raw_id, "status": "stored"}, status_code=202)

    @app.post("/v1/webhooks/stripe/{source}", openapi_extra=_ANY_JSON_BODY)
    def stripe_webhook(source: str, request: Request, body: Body) -> JSONResponse:
        """Stripe's webhook endpoint: verified, stored, then 200 as Stripe expects."""
        headers, content_type = _stored_headers(request), request.headers.get("content-type")
        intake = signed.get(source)
        if intake is None:
            unknown = MappingError(f"no Stripe source named {source[:64]!r}",
                                   code="unknown_source")
            kept = None if isinstance(body, BodyTooLargeError) else body
            _refuse(hub.intake, Refusal(source, unknown, ExceptionClass.MAPPING_ERROR, kept,
                                        headers, content_type))
        if isinstance(body, BodyTooLargeError):
            intake.refuse(body, None, headers, content_type)
            raise body
        raw_id = intake.receive(body, headers, content_type, limits(source))
        return JSONResponse({"received": True, "raw_event_id": raw_id})

    @app.post("/v1/usage/{source}/events", status_code=202, openapi_extra=_ANY_JSON_BODY)
    def usage_events(source: str, request: Request, body: Body) -> JSONResponse:
        """A batch of meter events (a JSON array, or JSON lines), stored before 202; each
        refused item is listed with its index and code, the others are kept."""
        if usage is None or not usage.knows(source):
            unknown = MappingError(f"no usage source named {source[:64]!r}",
                                   code="unknown_source")
            kept = None if isinstance(body, BodyTooLargeError) else body
            _refuse(hub.intake, Refusal(source, unknown, ExceptionClass.MAPPING_ERROR, kept,
                                        _stored_headers(request)))
        if isinstance(body, BodyTooLargeError):
            _refuse(hub.intake, Refusal(source, body, ExceptionClass.MAPPING_ERROR, None))
        receipt = usage.receive(source, body)
        return JSONResponse(receipt.as_json(), status_code=202)

    @app.get("/v1/status")
    def status() -> dict[str, Any]:
        return hub.status()

    @app.get("/v1/exceptions")
    def exceptions(status: str = UNRESOLVED_FILTER, klass: str | None = None) -> dict[str, Any]:
        """Every unresolved exception by default (`status`: unresolved, a status, or all)."""
        return hub.exception_listing(status, klass).as_json()

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
    def health() -> JSONResponse:
        """503 with the reasons while a pipeline thread is dead or stalled, else 200."""
        if pipeline is None:
            return JSONResponse({"status": "ok", "pipeline": "not run by this process"})
        report = pipeline.health()
        return JSONResponse(report.as_json(), status_code=200 if report.healthy else 503)

    return app
