"""The exception queue: filtered listing, detail, the queue's actions and the
approvals inbox. Each route parses, calls `views.exceptions`, and answers its JSON; every
action acts as the caller (`request.state.principal`) through the CLI's own service call."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from finsync.api import security
from finsync.api.params import BIGINT_MAX, PRINTABLE, ExceptionId
from finsync.auth.principal import (
    EXCEPTIONS_ACT,
    EXCEPTIONS_APPROVE,
    FINANCE_READ,
    Principal,
)
from finsync.domain.money import AMOUNT_CEILING
from finsync.hub.status import STATUS_FILTERS, UNRESOLVED_FILTER
from finsync.triage.queue import QUEUE_MAX
from finsync.triage.service import Keep
from finsync.views import exceptions as view
from finsync.views.services import Services

AGE_MAX_S = 10 * 366 * 86400  # ten years: older than anything the queue holds
REASON_MAX = 2000
# Free text: no control character but tab, line feed and carriage return (PostgreSQL's text
# cannot hold a NUL: a 422 naming the rule, never a driver error).
TEXT = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
ActionId = Annotated[int, Path(ge=1, le=BIGINT_MAX, description="A triage action's id.")]
RequestId = Annotated[int, Path(ge=1, le=BIGINT_MAX,
                                description="A two-person request's id.")]
Amount = Annotated[Decimal | None, Field(
    ge=0, lt=AMOUNT_CEILING, max_digits=21, decimal_places=3,
    description="Absolute money at stake in its own currency (a decimal string).")]
Age = Annotated[int | None, Field(ge=0, le=AGE_MAX_S, description="Seconds since it opened.")]
Name = Annotated[str | None, Field(min_length=1, max_length=64, pattern=PRINTABLE)]
Status = Annotated[str, Field(min_length=1, max_length=24, pattern=PRINTABLE,
                              description=f"One of {', '.join(STATUS_FILTERS)}.")]

_READS = security.needs(FINANCE_READ)
_ACTS = security.needs(EXCEPTIONS_ACT)
_APPROVES = security.needs(EXCEPTIONS_APPROVE)


class Filter(BaseModel):
    """Which exceptions: status (`unresolved`, a status, or `all`), class, legal entity,
    currency, age bounds in seconds and bounds of the absolute amount at stake."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    status: Status = UNRESOLVED_FILTER
    exception_class: Annotated[Name, Field(alias="class")] = None
    entity: Name = None
    currency: Annotated[str | None, Field(min_length=3, max_length=3, pattern=PRINTABLE)] = None
    age_min_s: Age = None
    age_max_s: Age = None
    amount_min: Amount = None
    amount_max: Amount = None

    def chosen(self) -> view.QueueFilter:
        return view.QueueFilter(self.status, self.exception_class, self.entity, self.currency,
                                self.age_min_s, self.age_max_s, self.amount_min,
                                self.amount_max)


def _filter(status: Annotated[str, Query(min_length=1, max_length=24,
                                         pattern=PRINTABLE)] = UNRESOLVED_FILTER,
            klass: Annotated[str | None, Query(alias="class", min_length=1, pattern=PRINTABLE,
                                               max_length=64)] = None,
            entity: Annotated[str | None, Query(min_length=1, max_length=64,
                                                pattern=PRINTABLE)] = None,
            currency: Annotated[str | None, Query(min_length=3, max_length=3,
                                                  pattern=PRINTABLE)] = None,
            age_min_s: Annotated[int | None, Query(ge=0, le=AGE_MAX_S)] = None,
            age_max_s: Annotated[int | None, Query(ge=0, le=AGE_MAX_S)] = None,
            amount_min: Annotated[Decimal | None, Query(ge=0, lt=AMOUNT_CEILING,
                                                        max_digits=21,
                                                        decimal_places=3)] = None,
            amount_max: Annotated[Decimal | None, Query(ge=0, lt=AMOUNT_CEILING,
                                                        max_digits=21,
                                                        decimal_places=3)] = None,
            ) -> view.QueueFilter:
    return view.QueueFilter(status, klass, entity, currency, age_min_s, age_max_s,
                            amount_min, amount_max)


QueueFilter = Annotated[view.QueueFilter, Depends(_filter)]
Reason = Annotated[str, Field(min_length=1, max_length=REASON_MAX, pattern=TEXT,
                              description="Why (recorded in the audit trail).")]


class Action(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Reason


class DuplicateChoice(Action):
    keep: Keep = Field(description="stored: the stored event stands; received: the received "
                                   "body takes its place (refused once posted).")


class Replay(Action):
    filter: Filter = Field(default_factory=Filter)


def _who(request: Request) -> Principal:
    principal: Principal = request.state.principal
    return principal


def register(app: FastAPI, services: Services) -> None:
    """This page's routes on `app`, reading through `services`."""

    @app.get("/v1/exceptions/queue", openapi_extra=_READS)
    def exception_queue(request: Request, chosen: QueueFilter,
                        limit: Annotated[int, Query(ge=1, le=QUEUE_MAX)] = QUEUE_MAX
                        ) -> dict[str, Any]:
        """The exceptions a filter chooses, the most money at stake first (amounts of
        different currencies compare as numbers: filter by currency to compare like with
        like); `count` and `at_stake` cover every match, the rows at most `limit`."""
        return view.queue(services, chosen, _who(request), limit=limit).as_json()

    @app.get("/v1/exceptions/{exception_id}/detail", openapi_extra=_READS)
    def exception_detail(request: Request, exception_id: ExceptionId) -> dict[str, Any]:
        """One exception: raw payload and mapped document (redacted without pii:read), its
        correlation chain, deliveries and attempts (their external calls with audit:read),
        actions taken, and the actions that apply now."""
        return view.detail(services, exception_id, _who(request))

    @app.post("/v1/exceptions/{exception_id}/retry", openapi_extra=_ACTS)
    def retry(request: Request, exception_id: ExceptionId, body: Action) -> dict[str, Any]:
        """Send the failed delivery again now (or map the refused payload again)."""
        return view.retry(services, exception_id, _who(request), body.reason).as_json()

    @app.post("/v1/exceptions/{exception_id}/reroute", openapi_extra=_ACTS)
    def reroute(request: Request, exception_id: ExceptionId, body: Action) -> dict[str, Any]:
        """Book a closed_period posting in the first open period (may need approval)."""
        return view.reroute(services, exception_id, _who(request), body.reason).as_json()

    @app.post("/v1/exceptions/{exception_id}/resolve", openapi_extra=_ACTS)
    def resolve(request: Request, exception_id: ExceptionId, body: Action) -> dict[str, Any]:
        """Resolve with a note: the fix was made elsewhere (may need approval)."""
        return view.resolve(services, exception_id, _who(request), body.reason).as_json()

    @app.post("/v1/exceptions/{exception_id}/ignore", openapi_extra=_ACTS)
    def ignore(request: Request, exception_id: ExceptionId, body: Action) -> dict[str, Any]:
        """Take the exception off the queue without a fix (may need approval)."""
        return view.ignore(services, exception_id, _who(request), body.reason).as_json()

    @app.post("/v1/exceptions/{exception_id}/resolve-duplicate", openapi_extra=_ACTS)
    def resolve_duplicate(request: Request, exception_id: ExceptionId,
                          body: DuplicateChoice) -> dict[str, Any]:
        """Choose which body of a duplicate_event stands (may need approval)."""
        return view.resolve_duplicate(services, exception_id, body.keep, _who(request),
                                      body.reason).as_json()

    @app.post("/v1/exceptions/replay", status_code=202, openapi_extra=_ACTS)
    def replay(request: Request, body: Replay) -> JSONResponse:
        """Replay the unresolved exceptions of a filter as a background job: read its
        progress at `/v1/jobs/{id}`."""
        job = view.start_replay(services, body.filter.chosen(), _who(request), body.reason)
        return JSONResponse(job.as_json(), status_code=202)

    @app.get("/v1/approvals", openapi_extra=_READS)
    def approvals(request: Request) -> dict[str, Any]:
        """What waits for a second person: triage actions and two-person requests, each
        saying whether the caller asked for it (`mine`: approving it is refused)."""
        return view.inbox(services, _who(request))

    @app.post("/v1/approvals/actions/{action_id}/approve", openapi_extra=_APPROVES)
    def approve_action(request: Request, action_id: ActionId, body: Action) -> dict[str, Any]:
        """Approve another person's triage action, and carry it out."""
        return view.decide_action(services, action_id, _who(request), body.reason,
                                  approve=True).as_json()

    @app.post("/v1/approvals/actions/{action_id}/reject", openapi_extra=_APPROVES)
    def reject_action(request: Request, action_id: ActionId, body: Action) -> dict[str, Any]:
        """Reject another person's triage action: the exception stays open."""
        return view.decide_action(services, action_id, _who(request), body.reason,
                                  approve=False).as_json()

    @app.post("/v1/approvals/requests/{request_id}/approve", openapi_extra=_APPROVES)
    def approve_request(request: Request, request_id: RequestId,
                        body: Action) -> dict[str, Any]:
        """Approve another person's two-person request (the approver also needs the
        scopes it names), and carry it out."""
        return view.decide_request(services, request_id, _who(request), body.reason,
                                   approve=True).as_json()

    @app.post("/v1/approvals/requests/{request_id}/reject", openapi_extra=_APPROVES)
    def reject_request(request: Request, request_id: RequestId,
                       body: Action) -> dict[str, Any]:
        """Reject another person's two-person request."""
        return view.decide_request(services, request_id, _who(request), body.reason,
                                   approve=False).as_json()
