"""Close and the contract timeline: per entity and period the status, the
cut-off checklist, revenue journals, close and reopen; one correlation id's milestones and
external calls.

Reads need `finance:read`. Closing a period and asking to reopen one need `periods:manage`
(`finsync close`, `finsync ledger reopen`); deciding a reopen needs `exceptions:approve`
(and `periods:manage`, which the request names and the control checks), by another person
than the one who asked (`same_person`). The external calls of a correlation id are in its
timeline only for a reader holding `audit:read`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from finsync.api import security
from finsync.api.params import (
    ID_MAX_CHARS,
    PRINTABLE,
    CorrelationId,
    EntityId,
)
from finsync.auth.principal import (
    AUDIT_READ,
    FINANCE_READ,
    PERIODS_MANAGE,
    PII_READ,
    Principal,
)
from finsync.views import close, timeline
from finsync.views.services import Services

PeriodName = Annotated[str, PathParam(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$",
                                      description="An accounting period, YYYY-MM.")]
SearchText = Annotated[str, Query(min_length=1, max_length=ID_MAX_CHARS, pattern=PRINTABLE,
                                  description="A correlation id, or an invoice, contract, "
                                              "payment, credit memo or refund id.")]


class Reason(BaseModel):
    """Why (recorded in the audit trail)."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000)


class CloseRequest(BaseModel):
    """`into_open_period`: the ERP period is closed already; send its revenue journals
    anyway, to be re-routed to the first open period (`finsync close --into-open-period`)."""

    model_config = ConfigDict(extra="forbid")
    into_open_period: StrictBool = False


def _principal(request: Request) -> Principal:
    principal: Principal = request.state.principal
    return principal


def register(app: FastAPI, services: Services) -> None:
    """This page's routes on `app`, reading through `services`."""

    @app.get("/v1/close", openapi_extra=security.needs(FINANCE_READ))
    def board() -> dict[str, Any]:
        """Every entity's accounting periods with their status, and the requests to reopen
        a period that wait for a second person."""
        return close.close_board(services).as_json()

    @app.get("/v1/close/{entity}/{period}", openapi_extra=security.needs(FINANCE_READ))
    def period(entity: EntityId, period: PeriodName) -> dict[str, Any]:
        """One period: its status, the close's checklist (each item's state; `blocks`: the
        close would be refused), its revenue journals, reopen requests and period log."""
        return close.period_view(services, entity, period).as_json()

    @app.post("/v1/close/{entity}/{period}", openapi_extra=security.needs(PERIODS_MANAGE))
    def close_period(request: Request, entity: EntityId, period: PeriodName,
                     body: CloseRequest) -> dict[str, Any]:
        """Close the period as `finsync close` does: cut-off, revenue journals posted, the
        ERP period closed (refused with `cutoff_incomplete` or `revenue_not_posted`)."""
        return close.close_period(services, _principal(request), entity, period,
                                  into_open_period=body.into_open_period).as_json()

    @app.post("/v1/close/{entity}/{period}/reopen",
              openapi_extra=security.needs(PERIODS_MANAGE))
    def reopen(request: Request, entity: EntityId, period: PeriodName,
               body: Reason) -> dict[str, Any]:
        """Ask to reopen a closed period: it opens once another person approves."""
        return close.request_reopen(services, _principal(request), entity, period,
                                    body.reason).as_json()

    @app.get("/v1/correlations", openapi_extra=security.needs(FINANCE_READ))
    def correlations(q: SearchText) -> dict[str, Any]:
        """The correlation ids a correlation id or an object's id names, oldest first."""
        return timeline.search(services, q).as_json()

    @app.get("/v1/correlations/{correlation_id}/timeline",
             openapi_extra=security.needs(FINANCE_READ))
    def correlation_timeline(request: Request, correlation_id: CorrelationId
                             ) -> dict[str, Any]:
        """One correlation id: its milestones across the systems, its technical and
        financial status, the exceptions raised for it, and (with audit:read) the external
        calls made for it."""
        principal = _principal(request)
        return timeline.timeline(services, correlation_id,
                                 can_read_pii=principal.can(PII_READ),
                                 can_read_audit=principal.can(AUDIT_READ)).as_json()
