"""The background jobs the console starts (reconcile, replay): their progress and result."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI
from fastapi import Path as PathParam

from finsync.api import security
from finsync.auth.principal import FINANCE_READ
from finsync.views.services import Services

JobId = Annotated[str, PathParam(min_length=1, max_length=40, description="A job's id.")]


def register(app: FastAPI, services: Services) -> None:
    """This page's routes on `app`."""

    @app.get("/v1/jobs/{job_id}", openapi_extra=security.needs(FINANCE_READ))
    def job(job_id: JobId) -> dict[str, Any]:
        """A background job of this process: its stage, `done` of `total`, and its result
        (or error) once it has finished."""
        return services.jobs.get(job_id).as_json()

