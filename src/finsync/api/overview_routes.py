"""The console's overview: money at stake by class and age, reconciliation variance
and its trend, the DESIGN §7 metrics, and the pipeline's health."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, Query, Request

from finsync.api import security
from finsync.auth.principal import FINANCE_READ
from finsync.views import overview
from finsync.views.services import Services

TrendDays = Annotated[int, Query(ge=1, le=overview.TREND_DAYS_MAX,
                                 description="How many days back the variance trend goes.")]


def register(app: FastAPI, services: Services) -> None:
    """This page's routes on `app`, reading through `services`."""

    @app.get("/v1/overview", openapi_extra=security.needs(FINANCE_READ))
    def read_overview(request: Request, days: TrendDays = overview.TREND_DAYS
                      ) -> dict[str, Any]:
        """Money at stake (unresolved exceptions, per currency) by class and by age bucket;
        each entity's latest reconciliation and its variance over the last `days` days;
        the seven metrics of DESIGN §7; the pipeline's health (`runs_here` false: another
        process runs it) and what waits to be delivered."""
        return overview.overview(services, request.app.state.pipeline, days).as_json()

    @app.get("/v1/metrics", openapi_extra=security.needs(FINANCE_READ))
    def read_metrics() -> dict[str, Any]:
        """The seven metrics of DESIGN §7 as JSON: the figures of `GET /metrics` (Prometheus
        text) and `finsync metrics`, from the same computation."""
        return overview.metrics(services).as_json()
