"""The composition root: the only module that picks concrete adapters."""

from __future__ import annotations

import os
import socket
from datetime import date
from pathlib import Path

from sqlalchemy import Engine

from finsync.config import ConfigError, FinsyncConfig, SystemSection
from finsync.connectors.embedded.billing import OutboxPublisher, billing_service
from finsync.connectors.embedded.ledger import EmbeddedLedger
from finsync.connectors.embedded.revenue import EmbeddedRevenue
from finsync.connectors.filedrop.ledger import FileDropLedger
from finsync.connectors.tryton.accounts import AccountMap as TrytonAccountMap
from finsync.connectors.tryton.accounts import Role as TrytonRole
from finsync.connectors.tryton.ledger import Entity, TrytonLedger
from finsync.connectors.tryton.rpc import TrytonClient
from finsync.domain.catalog import StandaloneSellingPrice
from finsync.domain.clock import utc_now
from finsync.domain.money import Money
from finsync.hub.mapping import CanonicalMapper, Mapper, MapperRegistry
from finsync.hub.service import Hub, SourcePump
from finsync.hub.target import Target, ledger_target, revenue_target
from finsync.storage.db import make_engine
from finsync.storage.migrate import upgrade
from finsync.systems.billing.catalog_file import (
    DEFAULT_CATALOG,
    load_billing_config,
    load_standalone_selling_prices,
)
from finsync.systems.billing.migrate import upgrade as upgrade_billing
from finsync.systems.ledger.chart import DEFAULT_CHART, parse_chart
from finsync.systems.ledger.fx import Rate
from finsync.systems.ledger.governance import Governor
from finsync.systems.ledger.migrate import upgrade as upgrade_ledger
from finsync.systems.ledger.rules import AccountMap
from finsync.systems.ledger.service import LedgerService
from finsync.systems.revrec.migrate import upgrade as upgrade_revrec
from finsync.systems.revrec.pattern import RecognitionPattern
from finsync.systems.revrec.service import RevenueService
from finsync.systems.revrec.terms import RecognitionTerms


def build_ledger_service(config: FinsyncConfig, engine: Engine,
                         system: SystemSection | None = None) -> LedgerService:
    """The embedded ledger on the hub's database, its books set up from `[ledger]`."""
    upgrade_ledger(engine)
    governor = Governor(system.calls_per_minute, system.concurrency) if system else None
    service = LedgerService(engine, utc_now, governor)
    for entity in config.ledger.entities:
        if not service.has_entity(entity.id):
            chart_text = config.resolve(entity.chart).read_text() if entity.chart \
                else DEFAULT_CHART.read_text()
            service.create_entity(entity.id, entity.name, entity.functional_currency,
                                  parse_chart(chart_text),
                                  AccountMap(entity.revenue_by_product,
                                             frozenset(entity.recognised_on_invoice)))
        for year in entity.fiscal_years:
            service.open_year(entity.id, year)
    for rate in config.ledger.rates:
        service.set_rate(Rate(rate.base, rate.quote, rate.effective, rate.rate))
    return service


def _billing_catalog(config: FinsyncConfig) -> Path | None:
    """The embedded billing catalogue, when billing is embedded (the shipped one if unset)."""
    for system in config.systems.values():
        if system.role == "billing":
            return config.resolve(system.catalog) if system.catalog else DEFAULT_CATALOG
    return None


def build_revenue_service(config: FinsyncConfig, engine: Engine) -> RevenueService:
    """The embedded revenue engine on the hub's database. SSPs and recognition patterns come
    from the billing catalogue (their owner); `[[revenue.ssp]]` entries take precedence."""
    upgrade_revrec(engine)
    catalog = _billing_catalog(config)
    configured = [StandaloneSellingPrice(s.product_id, Money.of(s.amount, s.currency),
                                         s.effective_from, s.effective_to)
                  for s in config.revenue.ssp]
    prices = configured + list(load_standalone_selling_prices(catalog) if catalog else ())
    products = load_billing_config(catalog).catalog.products if catalog else ()
    terms = RecognitionTerms(patterns=tuple((p.id, RecognitionPattern(p.revenue_pattern))
                                            for p in products))

    def ssp(product_id: str, on: date) -> StandaloneSellingPrice | None:
        return next((p for p in prices if p.product_id == product_id and p.applies_on(on)),
                    None)

    return RevenueService(engine, ssp, lambda _contract: terms)


def build_targets(config: FinsyncConfig, engine: Engine) -> dict[str, Target]:
    targets: dict[str, Target] = {}
    for name, system in config.systems.items():
        if system.role == "ledger" and system.connector == "filedrop":
            targets[name] = ledger_target(FileDropLedger(name, config.resolve(system.directory)))
        elif system.role == "ledger" and system.connector == "embedded":
            service = build_ledger_service(config, engine, system)
            targets[name] = ledger_target(EmbeddedLedger(name, service))
        elif system.role == "ledger" and system.connector == "tryton":
            targets[name] = ledger_target(build_tryton_ledger(name, system))
        elif system.role == "billing":
            continue  # a source, not a target: see build_pumps
        elif system.role == "revenue" and system.connector == "embedded":
            revenue = build_revenue_service(config, engine)
            targets[name] = revenue_target(EmbeddedRevenue(name, revenue))
        else:
            raise ConfigError(f"[systems.{name}]: no {system.connector} connector for the "
                              f"{system.role} role yet")
    return targets


def build_tryton_ledger(name: str, system: SystemSection) -> TrytonLedger:
    """Tryton behind the ledger port, from `[systems.<name>]` (the password from the
    environment variable the section names)."""
    url, database = system.url, system.database
    password = os.environ.get(system.password_env)
    if not url or not database or not system.companies:
        raise ConfigError(f"[systems.{name}]: a tryton ledger needs url, database, companies")
    if password is None:
        raise ConfigError(f"[systems.{name}]: set the password in ${system.password_env}")
    try:
        accounts = TrytonAccountMap(codes={TrytonRole(role): code
                                           for role, code in system.accounts.items()})
    except ValueError as exc:
        raise ConfigError(f"[systems.{name}].accounts: {exc}; roles are "
                          f"{', '.join(TrytonRole)}") from exc
    entities = {entity: Entity(company, accounts) for entity, company in system.companies.items()}
    return TrytonLedger(name, lambda: TrytonClient(url, database, system.user, password),
                        entities, max_batch=system.max_batch)


def build_pumps(config: FinsyncConfig, engine: Engine) -> dict[str, SourcePump]:
    """Embedded billing pushes its outbox of canonical events into the hub's intake."""
    pumps: dict[str, SourcePump] = {}
    for source, name in config.pumps.items():
        system = config.systems[name]
        upgrade_billing(engine)
        catalog = config.resolve(system.catalog) if system.catalog else None
        service = billing_service(engine, load_billing_config(catalog), utc_now)
        pumps[source] = OutboxPublisher(service).publish
    return pumps


def build_mappers(config: FinsyncConfig) -> MapperRegistry:
    kinds: dict[str, Mapper] = {"canonical": CanonicalMapper()}
    return MapperRegistry({source: kinds[kind] for source, kind in config.sources.items()})


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def build_engine(config: FinsyncConfig) -> Engine:
    url = config.database_url
    if url.startswith("sqlite:///") and ":memory:" not in url:
        config.resolve(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return make_engine(url)


def build_hub(config: FinsyncConfig, *, engine: Engine | None = None,
              migrate: bool = True) -> Hub:
    engine = engine or build_engine(config)
    if migrate:
        upgrade(engine)
    return Hub(engine, config.hub_settings(), build_mappers(config),
               build_targets(config, engine), utc_now, worker_id(),
               build_pumps(config, engine))
