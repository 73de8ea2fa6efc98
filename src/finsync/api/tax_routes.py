"""The tax liability report: what the tax engine's committed documents owe, per
jurisdiction, for one legal entity and filing period (`finsync tax liability`).

Rules:
- Reads (`finance:read`) the embedded tax engine's own report; with an external tax
  engine the report is that engine's (409 `system_external`).
- Parameters are bounded: an entity that is not configured is 404 `unknown_entity`, a
  period that is not YYYY-MM, YYYY-Qn or YYYY a 422.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, Query

from finsync.api import security
from finsync.auth.principal import FINANCE_READ
from finsync.systems.tax.liability import PERIOD_PATTERN
from finsync.views.services import Services, SystemExternalError, require_entity

_READS = security.needs(FINANCE_READ)
EntityQuery = Annotated[str, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$",
                                   description="A legal entity id.")]
PeriodQuery = Annotated[str, Query(pattern=PERIOD_PATTERN, max_length=7,
                                   description="A month YYYY-MM, quarter YYYY-Qn or year "
                                               "YYYY.")]


def register(app: FastAPI, services: Services) -> None:
    """The tax report's route on `app`, reading through `services`."""

    @app.get("/v1/tax/liability", openapi_extra=_READS)
    def tax_liability(entity: EntityQuery, period: PeriodQuery) -> dict[str, Any]:
        """Per jurisdiction and currency: sales by treatment, tax charged and credited,
        net tax due; voided invoices left out."""
        if services.tax is None:
            raise SystemExternalError("the tax engine is an external system: its liability "
                                      "report is its own")
        chosen = require_entity(services.entities, entity)
        rows = services.tax.liability(chosen.id, period)
        return {"entity": chosen.id, "period": period,
                "jurisdictions": [row.as_json() for row in rows]}
