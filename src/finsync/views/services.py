"""What the console's JSON API reads from and acts through: the same services the CLI uses,
composed once per process (`build_services`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from finsync.bootstrap import (
    Finance,
    build_ledger_service,
    build_revenue_service,
    build_tax_service,
)
from finsync.config import FinsyncConfig, SystemSection
from finsync.domain.clock import utc_now
from finsync.domain.errors import DomainError
from finsync.recon.service import Entity
from finsync.systems.ledger.service import LedgerService
from finsync.systems.revrec.service import RevenueService
from finsync.systems.tax.service import TaxService
from finsync.views.jobs import Jobs


class UnknownEntityError(DomainError):
    code = "unknown_entity"


class SystemExternalError(DomainError):
    """The report or action belongs to a system finsync does not embed (an external ERP or
    revenue engine): that system answers for it."""

    code = "system_external"


def require_entity(entities: Sequence[Entity], entity: str) -> Entity:
    """The configured legal entity named `entity`."""
    found = next((e for e in entities if e.id == entity), None)
    if found is None:
        known = ", ".join(e.id for e in entities)
        raise UnknownEntityError(f"unknown legal entity {entity[:64]!r}; known: {known}")
    return found


@dataclass(frozen=True)
class Services:
    """`finance`: the hub, reconciliation, triage, close, audit and call log. `ledger` and
    `revenue`: the embedded ERP's and revenue engine's own reports (AR aging, roll-forward,
    waterfall, RPO), None when that role is played by an external system (its reports are
    then that system's). `entities`: the legal entities and their functional currencies.
    `config`: the configuration the process runs on (thresholds, ownership)."""

    finance: Finance
    ledger: LedgerService | None
    revenue: RevenueService | None
    entities: tuple[Entity, ...]
    jobs: Jobs
    config: FinsyncConfig
    tax: TaxService | None = None  # the embedded tax engine's reports (liability)

    @property
    def clock(self) -> Callable[[], datetime]:
        return self.finance.hub.clock


def _embedded(config: FinsyncConfig, role: str) -> SystemSection | None:
    return next((s for s in config.systems.values()
                 if s.role == role and s.connector == "embedded"), None)


def build_services(config: FinsyncConfig, finance: Finance) -> Services:
    """What the console reads and acts through: `finance`, and the embedded ledger's and
    revenue engine's own reports when they are the configured ERP and revenue engine."""
    engine, clock = finance.hub.engine, finance.hub.clock
    ledger_system = _embedded(config, "ledger")
    ledger = None if ledger_system is None else build_ledger_service(config, engine,
                                                                      ledger_system, clock)
    revenue = (None if _embedded(config, "revenue") is None
               else build_revenue_service(config, engine))
    tax = (None if _embedded(config, "tax") is None
           else build_tax_service(config, engine, clock))
    entities = tuple(Entity(e.id, e.functional_currency) for e in config.ledger.entities)
    return Services(finance, ledger, revenue, entities, Jobs(utc_now), config, tax)
