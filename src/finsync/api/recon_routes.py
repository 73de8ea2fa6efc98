"""Reconciliation: every check per entity as of a date, the drill-down of a
break, the variance trend, and runs started in the background with their progress."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from finsync.api import security
from finsync.api.params import PRINTABLE, EntityId
from finsync.auth.principal import EXCEPTIONS_ACT, FINANCE_READ, Principal
from finsync.views import recon
from finsync.views.services import Services

AsOf = Annotated[date | None, Query(description="The as-of day (ISO); default: the day of "
                                    "the latest recorded run, else today.")]
CheckName = Annotated[str, PathParam(min_length=1, max_length=64,
                                     description="One of the checks "
                                     "(`GET /v1/reconciliation` lists them).")]
ItemRef = Annotated[str, Query(min_length=3, max_length=300, pattern=PRINTABLE,
                               description="An item's ref, e.g. invoice:inv_1.")]
TrendDays = Annotated[int, Query(ge=1, le=366, description="Days of as-of dates.")]
_READS = security.needs(FINANCE_READ)


class RunRequest(BaseModel):
    """Run reconciliation as of a day (it records the run and syncs the exception queue)."""

    model_config = ConfigDict(extra="forbid")
    as_of: date = Field(description="The as-of day (ISO).")


def register(app: FastAPI, services: Services) -> None:
    """This page's routes on `app`, reading through `services`."""

    def as_of_or_default(as_of: date | None) -> date:
        if as_of is None:
            return recon.default_as_of(services)
        return recon.checked_as_of(services, as_of)

    @app.get("/v1/reconciliation", openapi_extra=_READS)
    def reconciliation(as_of: AsOf = None) -> dict[str, Any]:
        """Every check of every entity as of a day: as the latest run of that day
        recorded them (`source: stored`), else computed now without recording
        (`computed`). `unexplained_breaks` > 0 is what makes `finsync reconcile` exit 3."""
        return recon.reconciliation(services, as_of_or_default(as_of)).as_json()

    @app.get("/v1/reconciliation/trend", openapi_extra=_READS)
    def trend(until: AsOf = None, days: TrendDays = recon.TREND_DAYS) -> dict[str, Any]:
        """Each entity's recorded variance and breaks per as-of day, over `days` days up to
        `until` (default: today)."""
        end = services.clock().date() if until is None else recon.checked_as_of(services,
                                                                                 until)
        return recon.variance_trend(services, end, days).as_json()

    @app.get("/v1/reconciliation/documents", openapi_extra=_READS)
    def documents(ref: ItemRef) -> dict[str, Any]:
        """The documents behind one item: the events the hub accepted for its object (with
        their correlation ids, for the timeline) and its id in each system."""
        return recon.item_documents(services, ref).as_json()

    @app.get("/v1/reconciliation/{entity}/{check}", openapi_extra=_READS)
    def breaks(entity: EntityId, check: CheckName, as_of: AsOf = None) -> dict[str, Any]:
        """One check's breaks for one entity (largest variance first, at most
        `BREAKS_MAX`), each with its cause, what explains it and its
        reconciliation_break."""
        return recon.check_breaks(services, as_of_or_default(as_of), entity, check).as_json()

    @app.post("/v1/reconciliation/runs", status_code=202,
              openapi_extra=security.needs(EXCEPTIONS_ACT))
    def run(request: Request, body: RunRequest) -> JSONResponse:
        """Run reconciliation now, in the background: the job (`GET /v1/jobs/{id}`) says
        its progress, then what it found. It opens and resolves reconciliation_breaks, so
        it needs exceptions:act; it is in the audit trail as the caller's."""
        principal: Principal = request.state.principal
        job = recon.start_run(services, principal, recon.checked_as_of(services, body.as_of))
        return JSONResponse(job.as_json(), status_code=202)
