"""Revenue and AR: the waterfall, the deferred revenue roll-forward, RPO, one
contract's schedule; AR aging, subledger against GL, unapplied cash and credits.

Every route reads (`finance:read`) through `views.revenue` / `views.ar`, which call the
embedded revenue engine's and ledger's own reports, the ones the CLI prints. Without an
entity the first configured one is read; without dates, the twelve months to this one and
today. Every parameter is bounded: an out-of-range one is a 422 naming the limit.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import FastAPI, Path, Query

from finsync.api import security
from finsync.api.params import ID_MAX_CHARS, PRINTABLE
from finsync.auth.principal import FINANCE_READ
from finsync.domain.errors import DomainError
from finsync.recon.service import Entity
from finsync.systems.revrec.report import ReportingPeriod
from finsync.systems.revrec.timegrid import add_months
from finsync.views import ar, revenue
from finsync.views.services import Services, UnknownEntityError, require_entity

_READS = security.needs(FINANCE_READ)
YEAR_MIN, YEAR_MAX = 1900, 2999  # dates a report is asked about; later ones add months
MONTH = r"^(19|2[0-9])[0-9]{2}-(0[1-9]|1[0-2])$"  # YYYY-MM within YEAR_MIN..YEAR_MAX
EntityQuery = Annotated[str | None, Query(
    min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$",
    description="A legal entity id (default: the first configured).")]
FirstMonth = Annotated[str | None, Query(
    alias="from", pattern=MONTH, description="First month, YYYY-MM (default: 11 months "
                                            "before this one).")]
LastMonth = Annotated[str | None, Query(
    alias="to", pattern=MONTH, description="Last month, YYYY-MM (default: this month).")]
AsOf = Annotated[date | None, Query(description="ISO date (default: today).")]
Limit = Annotated[int, Query(ge=1, le=1_000, description="Rows at most.")]
After = Annotated[str, Query(max_length=ID_MAX_CHARS, pattern=PRINTABLE,
                             description="List the contracts after this revenue contract id.")]
ContractId = Annotated[str, Path(min_length=1, max_length=ID_MAX_CHARS,
                                 pattern=PRINTABLE, description="A subscription contract id.")]
PeriodQuery = Annotated[ReportingPeriod, Query(description="Reporting period.")]


def _bounded(day: date) -> date:
    if not YEAR_MIN <= day.year <= YEAR_MAX:
        raise DomainError(f"as_of {day.isoformat()} is outside the years "
                          f"{YEAR_MIN}-{YEAR_MAX}")
    return day


def _months(first: str | None, last: str | None, today: date) -> tuple[str, str]:
    """The months asked for, by default the twelve to `today`'s."""
    to = last or f"{today:%Y-%m}"
    end = date.fromisoformat(f"{to}-01")
    start = first or f"{add_months(end, -11):%Y-%m}"
    for month in (start, to):
        _bounded(date.fromisoformat(f"{month}-01"))
    return start, to


def register(app: FastAPI, services: Services) -> None:
    """This page's routes on `app`, reading through `services`."""

    def entity_of(entity: str | None) -> Entity:
        if entity is None:
            if not services.entities:
                raise UnknownEntityError("no legal entity is configured")
            return services.entities[0]
        return require_entity(services.entities, entity)

    def today() -> date:
        return services.clock().date()

    def entities() -> list[dict[str, str]]:
        return [{"id": e.id, "currency": e.currency} for e in services.entities]

    @app.get("/v1/revenue/waterfall", openapi_extra=_READS)
    def revenue_waterfall(entity: EntityQuery = None, first: FirstMonth = None,
                          last: LastMonth = None) -> dict[str, Any]:
        """Revenue recognised per month and currency (`finsync revrec waterfall`)."""
        engine = revenue.embedded_revenue(services.revenue)
        chosen = entity_of(entity)
        start, end = _months(first, last, today())
        return {**revenue.waterfall(engine, chosen.id, start, end).as_json(),
                "entities": entities()}

    @app.get("/v1/revenue/roll-forward", openapi_extra=_READS)
    def revenue_roll_forward(entity: EntityQuery = None, first: FirstMonth = None,
                             last: LastMonth = None) -> dict[str, Any]:
        """Deferred revenue per month: opening + billed - recognised = closing, checked."""
        engine = revenue.embedded_revenue(services.revenue)
        chosen = entity_of(entity)
        start, end = _months(first, last, today())
        return revenue.roll_forward(engine, chosen.id, start, end).as_json()

    @app.get("/v1/revenue/rpo", openapi_extra=_READS)
    def revenue_rpo(entity: EntityQuery = None, as_of: AsOf = None) -> dict[str, Any]:
        """Remaining performance obligations, current and non-current (`finsync revrec
        rpo`)."""
        engine = revenue.embedded_revenue(services.revenue)
        chosen = entity_of(entity)
        day = _bounded(as_of or today())
        return revenue.rpo(engine, chosen.id, day).as_json()

    @app.get("/v1/revenue/contracts", openapi_extra=_READS)
    def revenue_contracts(entity: EntityQuery = None, after: After = "",
                          limit: Limit = 100) -> dict[str, Any]:
        """The entity's revenue contracts in id order, a page at a time."""
        engine = revenue.embedded_revenue(services.revenue)
        return revenue.contracts(engine, entity_of(entity).id, after, limit)

    @app.get("/v1/revenue/contracts/{contract_id}", openapi_extra=_READS)
    def revenue_contract(contract_id: ContractId,
                         period: PeriodQuery = ReportingPeriod.MONTH) -> dict[str, Any]:
        """One contract's schedule: allocation, revisions with their ASC 606 reasons,
        revenue per obligation per period and balances (404 `unknown_revenue_contract`)."""
        engine = revenue.embedded_revenue(services.revenue)
        return revenue.contract_schedule(engine, contract_id, period)

    @app.get("/v1/ar/aging", openapi_extra=_READS)
    def ar_aging(entity: EntityQuery = None, as_of: AsOf = None,
                 limit: Limit = 100) -> dict[str, Any]:
        """Open receivables per customer and bucket (`finsync ledger aging`), largest
        customers first; totals over every customer."""
        ledger = ar.embedded_ledger(services.ledger)
        chosen = entity_of(entity)
        day = _bounded(as_of or today())
        return {**ar.aging(ledger, chosen, day, limit).as_json(), "entities": entities()}

    @app.get("/v1/ar/subledgers", openapi_extra=_READS)
    def ar_subledgers(as_of: AsOf = None) -> dict[str, Any]:
        """Per entity, each AR subledger beside its GL control account."""
        ledger = ar.embedded_ledger(services.ledger)
        return ar.subledgers(ledger, services.entities, _bounded(as_of or today()))

    @app.get("/v1/ar/credits", openapi_extra=_READS)
    def ar_credits(entity: EntityQuery = None, as_of: AsOf = None,
                   limit: Limit = 100) -> dict[str, Any]:
        """Unapplied cash and over-credits open at `as_of`, largest first."""
        ledger = ar.embedded_ledger(services.ledger)
        return ar.credits(ledger, entity_of(entity), _bounded(as_of or today()), limit)
