"""The composition root: the only module that picks concrete adapters."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Engine

from finsync.config import ConfigError, FinsyncConfig, SystemSection
from finsync.connectors.embedded.billing import OutboxPublisher, billing_service
from finsync.connectors.embedded.billing_records import EmbeddedBillingRecords
from finsync.connectors.embedded.ledger import EmbeddedLedger
from finsync.connectors.embedded.revenue import EmbeddedRevenue
from finsync.connectors.filedrop.ledger import FileDropLedger
from finsync.connectors.ports import BillingRecordsPort, LedgerPort, RevenuePort
from finsync.domain.catalog import StandaloneSellingPrice
from finsync.domain.clock import utc_now
from finsync.domain.money import Money
from finsync.hub.close import PeriodClose
from finsync.hub.mapping import CanonicalMapper, Mapper, MapperRegistry
from finsync.hub.service import Hub, SourcePump
from finsync.hub.target import Target, ledger_target, revenue_target
from finsync.recon.service import Entity, Reconciliation
from finsync.storage.db import make_engine
from finsync.storage.migrate import upgrade
from finsync.systems.billing.catalog_file import (
    DEFAULT_CATALOG,
    load_billing_config,
    load_standalone_selling_prices,
)
from finsync.systems.billing.migrate import upgrade as upgrade_billing
from finsync.systems.billing.service import BillingService
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
from finsync.triage.policy import ApprovalPolicy
from finsync.triage.service import Triage

T = TypeVar("T")


def build_ledger_service(config: FinsyncConfig, engine: Engine,
                         system: SystemSection | None = None,
                         clock: Callable[[], datetime] = utc_now) -> LedgerService:
    """The embedded ledger on the hub's database, its books set up from `[ledger]`."""
    upgrade_ledger(engine)
    governor = Governor(system.calls_per_minute, system.concurrency) if system else None
    service = LedgerService(engine, clock, governor)
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


@dataclass(frozen=True, slots=True)
class Ports:
    """The configured systems, by name, behind their role's port."""

    ledgers: dict[str, LedgerPort] = field(default_factory=dict)
    revenues: dict[str, RevenuePort] = field(default_factory=dict)
    billing: dict[str, BillingRecordsPort] = field(default_factory=dict)

    def ledger(self) -> LedgerPort:
        return _only(self.ledgers, "ledger")

    def revenue(self) -> RevenuePort:
        return _only(self.revenues, "revenue")

    def billing_records(self) -> BillingRecordsPort:
        return _only(self.billing, "billing")


def _only(systems: Mapping[str, T], role: str) -> T:
    if not systems:
        raise ConfigError(f"no system with role {role!r} is configured")
    return next(iter(systems.values()))


def build_ports(config: FinsyncConfig, engine: Engine,
                clock: Callable[[], datetime] = utc_now) -> Ports:
    ports = Ports()
    for name, system in config.systems.items():
        if system.role == "ledger" and system.connector == "filedrop":
            ports.ledgers[name] = FileDropLedger(name, config.resolve(system.directory))
        elif system.role == "ledger" and system.connector == "embedded":
            ports.ledgers[name] = EmbeddedLedger(
                name, build_ledger_service(config, engine, system, clock))
        elif system.role == "billing" and system.connector == "embedded":
            ports.billing[name] = EmbeddedBillingRecords(
                name, _billing_service(config, engine, system, clock))
        elif system.role == "revenue" and system.connector == "embedded":
            ports.revenues[name] = EmbeddedRevenue(name, build_revenue_service(config, engine))
        else:
            raise ConfigError(f"[systems.{name}]: no {system.connector} connector for the "
                              f"{system.role} role yet")
    return ports


def build_targets(config: FinsyncConfig, engine: Engine,
                  clock: Callable[[], datetime] = utc_now,
                  ports: Ports | None = None) -> dict[str, Target]:
    """Ledgers and revenue engines receive; billing is a source (see build_pumps)."""
    ports = ports or build_ports(config, engine, clock)
    targets = {name: ledger_target(port) for name, port in ports.ledgers.items()}
    targets.update({name: revenue_target(port) for name, port in ports.revenues.items()})
    return targets


def build_billing_service(config: FinsyncConfig, engine: Engine,
                          clock: Callable[[], datetime] = utc_now) -> BillingService:
    """The embedded billing platform configured under role billing."""
    name = next((n for n, s in config.systems.items()
                 if s.role == "billing" and s.connector == "embedded"), None)
    if name is None:
        raise ConfigError("no embedded billing system is configured")
    return _billing_service(config, engine, config.systems[name], clock)


def _billing_service(config: FinsyncConfig, engine: Engine, system: SystemSection,
                     clock: Callable[[], datetime]) -> BillingService:
    upgrade_billing(engine)
    catalog = config.resolve(system.catalog) if system.catalog else None
    return billing_service(engine, load_billing_config(catalog), clock)


def build_pumps(config: FinsyncConfig, engine: Engine,
                clock: Callable[[], datetime] = utc_now) -> dict[str, SourcePump]:
    """Embedded billing pushes its outbox of canonical events into the hub's intake."""
    return {source: OutboxPublisher(_billing_service(config, engine, config.systems[name],
                                                     clock)).publish
            for source, name in config.pumps.items()}


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
              migrate: bool = True, clock: Callable[[], datetime] = utc_now,
              ports: Ports | None = None) -> Hub:
    engine = engine or build_engine(config)
    if migrate:
        upgrade(engine)
    return Hub(engine, config.hub_settings(), build_mappers(config),
               build_targets(config, engine, clock, ports), clock, worker_id(),
               build_pumps(config, engine, clock))


@dataclass(frozen=True, slots=True)
class Finance:
    """Everything finance works with: the hub, the systems' ports, period close,
    reconciliation and the exception queue, on one database and one clock."""

    hub: Hub
    ports: Ports
    close: PeriodClose
    recon: Reconciliation
    triage: Triage


def build_finance(config: FinsyncConfig, *, engine: Engine | None = None,
                  clock: Callable[[], datetime] = utc_now) -> Finance:
    engine = engine or build_engine(config)
    upgrade(engine)
    ports = build_ports(config, engine, clock)
    hub = build_hub(config, engine=engine, migrate=False, clock=clock, ports=ports)
    entities = [Entity(e.id, e.functional_currency) for e in config.ledger.entities]
    return Finance(
        hub, ports,
        PeriodClose(hub, ports.ledger(), ports.revenue()),
        Reconciliation(engine, ports.billing_records(), ports.ledger(), ports.revenue(),
                       entities, clock),
        Triage(engine, ApprovalPolicy(config.triage.approval_threshold, config.triage.thresholds),
               ports.ledgers.get, clock))
