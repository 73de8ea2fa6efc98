"""The HTTP API. Intake answers 202 only after the raw request is committed; a payload that
cannot be mapped is kept too, and answered with a 4xx and a machine-readable code.

Handlers that touch the database are plain `def`: FastAPI runs them in its thread pool, so a
slow commit never blocks the event loop. Intake group-commits (`hub.group_commit`): each
request is mapped in its own thread, then stored with the requests that arrived with it in
one transaction by the app's writer thread, and answered after that commit; each committed
batch wakes the pipeline (`wake`, and this process's pipeline worker when it runs one).

An intake node (`serve --role intake`, `publisher`) runs no pipeline: its group commit
publishes each batch to the replicated raw stream instead (`streaming.raw_publisher`) and
answers 202 once JetStream acknowledged it (`transport_id`, no raw event id yet: the
archiver stores it); no acknowledgement is 503 `transport_unavailable`. Refusals are
recorded in the database as everywhere.

The one async step is the `_admitted` dependency, which FastAPI awaits before the handler
runs: the source's rate limit (429 `rate_limited`, with `Retry-After`), then its body, read
while counting and no further than the source's `body_max_bytes` (413 `body_too_large`; the
refusal is recorded by the handler, the body never). Limits are per source (`limits_for`,
from the configuration). Event intake's route, nearly every request, is a `LeanRoute`:
declared like every route, it runs these dependencies itself instead of through FastAPI's
per-request solving (`lean_route`).

Every route is authenticated before anything else runs (`security`: a bearer token with the
route's scope, deny by default). An intake request's path names a source its token may
write as, and each event it carries must say a source the token may write as (in practice
the path's; only an `events:write:*` token relays for others): the ownership check never
trusts a body's claim alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from datetime import date, timedelta
from typing import Annotated, Any, NoReturn, Protocol

import anyio.to_thread
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException

from finsync.api import (
    close_routes,
    console_shell,
    cpq_routes,
    exception_routes,
    job_routes,
    overview_routes,
    recon_routes,
    revenue_routes,
    security,
    tax_routes,
)
from finsync.api.body import read_within
from finsync.api.errors import (
    finsync_error_handler,
    http_error_handler,
    validation_error_handler,
)
from finsync.api.lean_route import LeanRoute
from finsync.api.params import BIGINT_MAX, CorrelationId, ExceptionId
from finsync.api.recent_tokens import RecentTokens
from finsync.audit.service import PAGE_MAX, AuditTrail
from finsync.audit.signing import Keyring
from finsync.auth.principal import AUDIT_READ, FINANCE_READ, PII_READ, Principal, events_write
from finsync.auth.sessions import ABSOLUTE_LIFETIME, IDLE_TIMEOUT, Session, session_for
from finsync.auth.tokens import principal_for
from finsync.domain.clock import utc_now
from finsync.domain.errors import ExceptionClass, FinsyncError, MappingError, SignatureError
from finsync.domain.headers import stored_headers
from finsync.domain.limits import InputLimits
from finsync.hub import logfilter
from finsync.hub.group_commit import BATCH_MAX, LINGER_S, Checked, GroupCommit, stores_raw
from finsync.hub.held_retry import HELD_RETRY, HeldRetry
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
from finsync.hub.webhook import CPQ_SCHEME, HUBSPOT_SCHEME, STRIPE_SCHEME, WebhookIntake
from finsync.views.services import Services

# The console's pages: each registers its JSON reads and actions over `Services`.
CONSOLE_PAGES = (job_routes, overview_routes, exception_routes, recon_routes, revenue_routes,
                 close_routes, tax_routes)


def _stored_headers(request: Request) -> dict[str, str]:
    """The allowlisted headers (`domain.headers`): credentials never go further than here;
    the signature header does (verified, and kept for audit)."""
    return stored_headers(request.headers)


LimitsFor = Callable[[str], InputLimits]
AfterSeq = Annotated[int, Query(ge=0, le=BIGINT_MAX, description="Records after this seq.")]
PageSize = Annotated[int, Query(ge=1, le=PAGE_MAX, description="Records in the page.")]


def _default_limits(_source: str) -> InputLimits:
    return InputLimits()


class Admission:
    """The source's rate limit, then its body within limits. Known sources have a bucket
    each; every unknown name shares one."""

    def __init__(self, limits_for: LimitsFor, known: Callable[[str], bool]) -> None:
        self.limits_for, self.known, self.limiter = limits_for, known, RateLimiter()

    async def admit(self, source: str, request: Request) -> bytes | BodyTooLargeError:
        limits = self.limits_for(source)
        self.limiter.take(source if self.known(source) else UNKNOWN_SOURCES, limits)
        return await read_within(request, limits.body_max_bytes)


async def _admitted(source: str, request: Request) -> bytes | BodyTooLargeError:
    admission: Admission = request.app.state.admission
    return await admission.admit(source, request)


Body = Annotated[bytes | BodyTooLargeError, Depends(_admitted)]
# The body is read by `_admitted`, not declared as a parameter: say in the OpenAPI what it is.
_ANY_JSON_BODY = {"requestBody": {"required": True,
                                  "content": {"application/json": {"schema": {}}}}}
# What an intake route needs: a token that may write as the path's source.
_WRITES_AS_SOURCE = {**_ANY_JSON_BODY, **security.needs(events_write("{source}"))}
# The same for event intake, whose group commit looks the batch's tokens up again before it
# stores: its token may come from a look-up made within the last second (`recent_tokens`).
_STORES_AS_SOURCE = {**_ANY_JSON_BODY, **security.rechecked(events_write("{source}"))}
_READS_FINANCE = security.needs(FINANCE_READ)
_READS_AUDIT = security.needs(AUDIT_READ)


def _reads_pii(request: Request) -> bool:
    """Whether the caller may see personal data (`pii:read`)."""
    principal: Principal = request.state.principal
    return principal.can(PII_READ)


def _refuse(intake: Intake, refusal: Refusal) -> NoReturn:
    intake.refuse(refusal)
    raise refusal.error


USAGE = "finsync-usage"
JOBS_WAIT_S = 60.0  # how long a stopping process waits for the console's running jobs
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
                        usage_interval_s: float = 10.0,
                        held: HeldRetry | None = None) -> Supervisor:
    """The pipeline's threads: the hub, the daily reconciliation (a thread of its own, never
    inside the delivery loop), with usage intake the totals of settled days handed to
    billing every `usage_interval_s`, and with `held` the retry of invoices held for tax
    (each on its own backoff, looked at every `interval_s`)."""
    pipeline = hub_pipeline(hub, interval_s, daily)
    workers = list(pipeline.workers)
    if usage is not None:
        workers.append(PipelineWorker(USAGE, usage.step, hub.clock, usage_interval_s))
    if held is not None:
        workers.append(PipelineWorker(HELD_RETRY, held.step, hub.clock, interval_s))
    if len(workers) == len(pipeline.workers):
        return pipeline
    return Supervisor(workers, pipeline.check_s,
                      on_stop=(hub.wakeup.close,))  # the listener of `hub_pipeline`


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


def _writes_as(principal: Principal) -> Callable[[str], bool]:
    """Whether `principal` may send events that say a source: its token holds
    `events:write:<source>` (`events:write:*` relays for every source)."""
    def may(source: str) -> bool:
        return principal.can(events_write(source))
    return may


class Receipt(Protocol):
    def as_json(self) -> dict[str, object]: ...


class Publisher(Protocol):
    """What an intake node stores a batch with (`streaming.raw_publisher.RawPublisher`):
    each request's receipt, once the batch is durable; closed when the app stops."""

    def __call__(self, batch: Sequence[Checked]) -> Sequence[Receipt]: ...

    def close(self) -> None: ...


def _receipt(result: int | Receipt) -> dict[str, object]:
    """What a 202 says: the raw event's id, or on an intake node the message's."""
    if isinstance(result, int):
        return {"raw_event_id": result, "status": "stored"}
    return result.as_json()


def _tokens_of(hub: Hub) -> security.Authenticate:
    def authenticate(token: str) -> Principal:
        return principal_for(hub.engine, token, utc_now())
    return authenticate


def _sessions_of(hub: Hub) -> security.Sessions:
    def session(secret: str) -> Session:
        return session_for(hub.engine, secret, utc_now())
    return session


def create_app(hub: Hub, *, worker_interval_s: float | None = None,
               metrics: Callable[[], str] | None = None,
               daily: Callable[[date], object] | None = None,
               webhooks: Mapping[str, WebhookIntake] | None = None,
               limits_for: LimitsFor | None = None,
               wake: Callable[[int], None] | None = None,
               batch_max: int = BATCH_MAX, linger_s: float = LINGER_S,
               usage: UsageIntake | None = None, usage_interval_s: float = 10.0,
               held: HeldRetry | None = None,
               authenticate: security.Authenticate | None = None,
               audit: AuditTrail | None = None, services: Services | None = None,
               idle_timeout: timedelta = IDLE_TIMEOUT,
               session_lifetime: timedelta = ABSOLUTE_LIFETIME,
               publisher: Publisher | None = None) -> FastAPI:
    """The app. `worker_interval_s` runs the pipeline in this process (None: another process
    runs it); `wake(count)` is called after every committed intake batch of `count` raw
    events (the pipeline of this process is woken anyway). `authenticate(token)` is the
    principal a bearer token stands for (default: the API tokens in the hub's database,
    at the wall clock's time). Without `audit`, the trail is read and verified with no
    trusted key (signed checkpoints then fail verification). With `services`, the console
    is served at `/` with its JSON API (`CONSOLE_PAGES`); its sessions end after
    `idle_timeout` without a request, `session_lifetime` after log-in at the latest. With
    `publisher` the app is an intake node: event intake publishes to the raw stream, and
    there is no pipeline (`worker_interval_s` must be None); the app closes it when it
    stops; it serves no console (its shell and log-in included)."""
    if publisher is not None and worker_interval_s:
        raise ValueError("an intake node runs no pipeline: worker_interval_s must be None")
    logfilter.install()  # no secret nor e-mail address in this process's finsync logs
    trail = audit or AuditTrail(hub.engine, Keyring.of(None), hub.clock)
    signed = dict(webhooks or {})
    limits = limits_for or _default_limits

    # The pipeline (and the daily job, in a thread of its own), supervised: `finsync serve`.
    pipeline = None
    if worker_interval_s:
        pipeline = pipeline_supervisor(hub, worker_interval_s, daily, usage, usage_interval_s,
                                       held)
    # Without a caller's `authenticate`, intake's tokens are looked up once a second and
    # again by the group commit for each batch (`recent_tokens`).
    recent = None if authenticate is not None else RecentTokens(hub.engine, utc_now)
    writer: GroupCommit[int] | GroupCommit[Receipt]
    if publisher is None:  # the recheck in the transaction that stores the batch
        store = stores_raw(hub.intake, None if recent is None else recent.check_in)
        writer = GroupCommit(hub.intake, store, batch_max=batch_max, linger_s=linger_s,
                             on_commit=_waker(hub, wake))
    else:  # an intake node: nothing in this database to wake a pipeline for
        writer = GroupCommit(hub.intake, publisher, batch_max=batch_max, linger_s=linger_s,
                             recheck=None if recent is None else recent.check)

    def stop_jobs() -> None:
        """The console's running jobs finish before the process lets go of the database."""
        if services is not None:
            services.jobs.wait(JOBS_WAIT_S)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        _allow_waiting_threads(batch_max)
        if pipeline is None:
            try:
                yield
            finally:
                await anyio.to_thread.run_sync(stop_jobs)
                writer.close()
                if publisher is not None:
                    publisher.close()
            return
        pipeline.start()
        supervising = asyncio.create_task(_supervise(pipeline))
        try:
            yield
        finally:
            supervising.cancel()
            with suppress(asyncio.CancelledError):
                await supervising
            await anyio.to_thread.run_sync(stop_jobs)
            writer.close()
            pipeline.stop()

    # The documents FastAPI serves by itself would be routes without a scope: /openapi.json
    # is served below, authenticated like every route; the HTML viewers are not served.
    app = FastAPI(title="finsync", version="0.1.0", lifespan=lifespan,
                  dependencies=[Depends(security.authenticated)],
                  openapi_url=None, docs_url=None, redoc_url=None)
    app.state.authenticate = authenticate or _tokens_of(hub)
    app.state.recent_tokens = recent
    app.state.sessions = _sessions_of(hub)
    generated = app.openapi

    def documented() -> dict[str, Any]:
        return security.document(generated())
    app.openapi = documented  # type: ignore[method-assign]
    app.state.pipeline = pipeline  # None when this process runs no pipeline
    app.state.intake_writer = writer
    app.add_exception_handler(FinsyncError, finsync_error_handler)
    app.add_exception_handler(HTTPException, http_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.state.admission = Admission(limits, lambda s: hub.mappers.knows(s) or s in signed
                                    or (usage is not None and usage.knows(s)))

    def receive(source: str, request: Request, body: Body) -> JSONResponse:
        """A source's event(s). A signed source is taken only at its signed endpoint."""
        headers, content_type = _stored_headers(request), request.headers.get("content-type")
        if isinstance(body, BodyTooLargeError):
            _refuse(hub.intake, Refusal(source, body, ExceptionClass.MAPPING_ERROR, None,
                                        headers, content_type))
        if source in signed:
            path = f"/v1/webhooks/{signed[source].scheme}/{source}"
            unsigned = SignatureError(f"source {source!r} takes signed requests only, at "
                                      f"{path}", code="signature_missing")
            signed[source].refuse(unsigned, body, headers, content_type)
            raise unsigned
        try:
            result = writer.receive(source, body, headers, content_type, limits(source),
                                    writes_as=_writes_as(request.state.principal),
                                    token=request.state.token_id)
        except BodyTooLargeError as too_large:  # an intake node: over the transport's limit
            _refuse(hub.intake, Refusal(source, too_large, ExceptionClass.MAPPING_ERROR, None,
                                        headers, content_type))
        return JSONResponse(_receipt(result), status_code=202)

    # Nearly every request: served without FastAPI's per-request dependency solving.
    app.router.add_api_route("/v1/sources/{source}/events", receive, methods=["POST"],
                             status_code=202, openapi_extra=_STORES_AS_SOURCE,
                             route_class_override=LeanRoute)

    # After event intake, which is then the first route tried: the router tries every route
    # in order, and intake is nearly every request. An intake node serves no console: its
    # paths are unknown there (404 `not_found`), not a console asset misnamed (422).
    if publisher is None:
        console_shell.register(app, hub.engine, utc_now, idle_timeout, session_lifetime)
    cpq_routes.register(app, hub)
    for page in CONSOLE_PAGES if services is not None else ():
        page.register(app, services)

    def signed_intake(scheme: str, source: str, request: Request, body: Body) -> int:
        """Store a request of a signed source of `scheme`, verified on its raw bytes."""
        headers, content_type = _stored_headers(request), request.headers.get("content-type")
        intake = signed.get(source)
        if intake is None or intake.scheme != scheme:
            unknown = MappingError(f"no {scheme} source named {source[:64]!r}",
                                   code="unknown_source")
            kept = None if isinstance(body, BodyTooLargeError) else body
            _refuse(hub.intake, Refusal(source, unknown, ExceptionClass.MAPPING_ERROR, kept,
                                        headers, content_type))
        if isinstance(body, BodyTooLargeError):
            intake.refuse(body, None, headers, content_type)
            raise body
        return intake.receive(body, headers, content_type, limits(source))

    @app.post("/v1/webhooks/stripe/{source}",
              openapi_extra={**_ANY_JSON_BODY, **security.SIGNED})
    def stripe_webhook(source: str, request: Request, body: Body) -> JSONResponse:
        """Stripe's webhook endpoint: verified, stored, then 200 as Stripe expects."""
        raw_id = signed_intake(STRIPE_SCHEME, source, request, body)
        return JSONResponse({"received": True, "raw_event_id": raw_id})

    @app.post("/v1/webhooks/hubspot/{source}",
              openapi_extra={**_ANY_JSON_BODY, **security.SIGNED})
    def hubspot_webhook(source: str, request: Request, body: Body) -> JSONResponse:
        """HubSpot's webhook endpoint (v3 signature): verified, stored, then 200; the
        objects it names are fetched by the pipeline."""
        raw_id = signed_intake(HUBSPOT_SCHEME, source, request, body)
        return JSONResponse({"received": True, "raw_event_id": raw_id})

    @app.post("/v1/webhooks/cpq/{source}", status_code=202,
              openapi_extra={**_ANY_JSON_BODY, **security.SIGNED})
    def cpq_webhook(source: str, request: Request, body: Body) -> JSONResponse:
        """A CPQ source's request (finsync's CPQ JSON, or a Salesforce relay's event),
        signed with `Finsync-Signature` (docs/cpq/sources.md): verified on the raw bytes,
        stored, then 202."""
        raw_id = signed_intake(CPQ_SCHEME, source, request, body)
        return JSONResponse({"raw_event_id": raw_id, "status": "stored"}, status_code=202)

    @app.post("/v1/usage/{source}/events", status_code=202, openapi_extra=_WRITES_AS_SOURCE)
    def usage_events(source: str, request: Request, body: Body) -> JSONResponse:
        """A batch of meter events (a JSON array, or JSON lines), stored before 202; each
        refused item is listed with its index and code, the others are kept. A batch whose
        every item is refused answers 422 `every_item_refused` (the same list); one with no
        item, 422 `empty_batch`."""
        if usage is None or not usage.knows(source):
            unknown = MappingError(f"no usage source named {source[:64]!r}",
                                   code="unknown_source")
            kept = None if isinstance(body, BodyTooLargeError) else body
            _refuse(hub.intake, Refusal(source, unknown, ExceptionClass.MAPPING_ERROR, kept,
                                        _stored_headers(request)))
        if isinstance(body, BodyTooLargeError):
            _refuse(hub.intake, Refusal(source, body, ExceptionClass.MAPPING_ERROR, None))
        receipt = usage.receive(source, body)
        if receipt.stored or receipt.duplicates:
            return JSONResponse(receipt.as_json(), status_code=202)
        error = {"code": "every_item_refused",
                 "message": f"all {len(receipt.refused)} meter events were refused: see "
                            "`refused` (each refusal is an exception finance can see)"}
        return JSONResponse({**receipt.as_json(), "error": error}, status_code=422)

    @app.get("/v1/status", openapi_extra=_READS_FINANCE)
    def status() -> dict[str, Any]:
        return hub.status()

    @app.get("/v1/exceptions", openapi_extra=_READS_FINANCE)
    def exceptions(request: Request, status: str = UNRESOLVED_FILTER,
                   klass: str | None = None) -> dict[str, Any]:
        """Every unresolved exception by default (`status`: unresolved, a status, or all);
        personal data only with pii:read."""
        return hub.exception_listing(status, klass,
                                     can_read_pii=_reads_pii(request)).as_json()

    @app.get("/v1/exceptions/{exception_id}", openapi_extra=_READS_FINANCE)
    def exception(request: Request, exception_id: ExceptionId) -> dict[str, Any]:
        """One exception and the payload it is about; personal data only with pii:read."""
        return hub.exception_detail(exception_id, can_read_pii=_reads_pii(request))

    @app.get("/v1/correlations/{correlation_id}/milestones", openapi_extra=_READS_FINANCE)
    def milestones(correlation_id: CorrelationId) -> dict[str, Any]:
        return {"correlation_id": correlation_id, "milestones": hub.timeline(correlation_id),
                **hub.transaction_status(correlation_id)}

    @app.get("/v1/audit", openapi_extra=_READS_AUDIT)
    def audit_records(after: AfterSeq = 0, limit: PageSize = 100) -> dict[str, Any]:
        """The audit trail's records in seq order, a page at a time: pass the answer's
        `next_after` as `after` for the next page (null: the last page)."""
        return trail.records(after, limit)

    @app.get("/v1/audit/verify", openapi_extra=_READS_AUDIT)
    def audit_verify() -> dict[str, Any]:
        """The chain walked, the checkpoints checked, the legacy logs covered; `ok` says
        whether anything was found (the answer is 200 either way: it is a report)."""
        return trail.verify().as_json()

    @app.get("/v1/correlations/{correlation_id}/calls", openapi_extra=_READS_AUDIT)
    def calls(correlation_id: CorrelationId) -> dict[str, Any]:
        """Every external call made for one correlation id, to every system, oldest first
        (the call log: method, endpoint, status, duration, idempotency keys, redacted
        excerpts)."""
        return {"correlation_id": correlation_id,
                "calls": [c.as_json() for c in hub.calls(correlation_id)]}

    @app.get("/metrics", response_class=PlainTextResponse, openapi_extra=_READS_FINANCE)
    def prometheus() -> str:
        if metrics is None:
            raise FinsyncError("metrics are not configured for this app")
        return metrics()

    @app.get("/openapi.json", include_in_schema=False, openapi_extra=security.ANY_TOKEN)
    def openapi() -> dict[str, Any]:
        return app.openapi()

    @app.get("/healthz", openapi_extra=security.PUBLIC)
    def health() -> JSONResponse:
        """503 with the reasons while a pipeline thread is dead or stalled, else 200."""
        if pipeline is None:
            return JSONResponse({"status": "ok", "pipeline": "not run by this process"})
        report = pipeline.health()
        return JSONResponse(report.as_json(), status_code=200 if report.healthy else 503)

    return app
