"""The composition root: the only module that picks concrete adapters."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from starlette.applications import Starlette

from finsync.audit.migrate import upgrade as upgrade_audit
from finsync.audit.service import AuditTrail
from finsync.audit.signing import Keyring, load_signer
from finsync.auth.migrate import upgrade as upgrade_auth
from finsync.config import (
    ConfigError,
    CpqSourceSection,
    FinsyncConfig,
    HubSpotSection,
    StripeSection,
    SystemSection,
)
from finsync.connectors.calls import NO_RECORDER, CallRecorder
from finsync.connectors.cpq import document as cpq_document
from finsync.connectors.cpq import signature as cpq_signature
from finsync.connectors.cpq.document import DocumentSettings
from finsync.connectors.cpq.filedrop import FileDrop
from finsync.connectors.cpq.filedrop import FileDropError as FileDropError  # for the CLI
from finsync.connectors.cpq.filedrop import load_file as load_cpq_drop
from finsync.connectors.cpq.limits import CpqLimits
from finsync.connectors.cpq.salesforce import SalesforceSettings
from finsync.connectors.cpq.salesforce import translate as salesforce_translate
from finsync.connectors.embedded.billing import OutboxPublisher, billing_service
from finsync.connectors.embedded.billing_records import EmbeddedBillingRecords
from finsync.connectors.embedded.held import EmbeddedHeldInvoices
from finsync.connectors.embedded.ledger import EmbeddedLedger
from finsync.connectors.embedded.revenue import EmbeddedRevenue
from finsync.connectors.embedded.subscription_platform import EmbeddedSubscriptionPlatform
from finsync.connectors.embedded.tax import EmbeddedTax
from finsync.connectors.embedded.usage import EmbeddedUsage
from finsync.connectors.filedrop.ledger import FileDropLedger
from finsync.connectors.hubspot import fetcher as hubspot_fetcher
from finsync.connectors.hubspot import signature as hubspot_signature
from finsync.connectors.hubspot import state as hubspot_state
from finsync.connectors.hubspot.client import ClientSettings as HubSpotClientSettings
from finsync.connectors.hubspot.client import HubSpotClient
from finsync.connectors.hubspot.fetcher import Fetcher as HubSpotFetcher
from finsync.connectors.hubspot.mapping import HubSpotSettings
from finsync.connectors.hubspot.mapping import translate as hubspot_translate
from finsync.connectors.ports import (
    BillingRecordsPort,
    HeldInvoicePort,
    LedgerPort,
    RevenuePort,
    SubscriptionPlatformPort,
    TaxPort,
)
from finsync.connectors.stripe import signature as stripe_signature
from finsync.connectors.stripe import state as stripe_state
from finsync.connectors.stripe.catalog import Catalog
from finsync.connectors.stripe.client import FETCHABLE as STRIPE_FETCHABLE
from finsync.connectors.stripe.client import ClientSettings, StripeClient
from finsync.connectors.stripe.mapping import translate as stripe_translate
from finsync.connectors.stripe.meter_source import StripeMeters
from finsync.connectors.stripe.mirror import Mirror
from finsync.connectors.stripe.objects import SourceSettings
from finsync.connectors.stripe.order_params import OrderSettings
from finsync.connectors.stripe.orders import StripeSubscriptionPlatform
from finsync.connectors.stripe.poller import Poller
from finsync.connectors.stripe.records import StripeBillingRecords
from finsync.connectors.stripe.verify import Verifier
from finsync.connectors.taxhttp.client import HttpTax
from finsync.connectors.taxhttp.server import create_tax_app
from finsync.connectors.tryton.accounts import AccountMap as TrytonAccountMap
from finsync.connectors.tryton.accounts import Role as TrytonRole
from finsync.connectors.tryton.bootstrap import BookSpec, BootstrapReport
from finsync.connectors.tryton.bootstrap import bootstrap as bootstrap_tryton
from finsync.connectors.tryton.ledger import Entity as TrytonEntity
from finsync.connectors.tryton.ledger import TrytonLedger
from finsync.connectors.tryton.rpc import TrytonClient
from finsync.controls.configuration import ConfigControl
from finsync.controls.migrate import upgrade as upgrade_controls
from finsync.controls.period import PeriodControl, record_change
from finsync.controls.request import TwoPerson
from finsync.domain.catalog import BillingFrequency, StandaloneSellingPrice
from finsync.domain.catalog_map import CatalogMap, CatalogMapError
from finsync.domain.catalog_map import parse as parse_map
from finsync.domain.clock import utc_now
from finsync.domain.commercial import CommercialContract, ProrationTerms
from finsync.domain.errors import SignatureError
from finsync.domain.events import EventType
from finsync.domain.money import Money
from finsync.domain.party import CustomerAccount
from finsync.domain.secret import RotatingSecret, valid_at
from finsync.hub.buffer import BufferPolicy
from finsync.hub.catalog_map import CatalogLoad, Known, with_price_months
from finsync.hub.catalog_map import current as current_map
from finsync.hub.catalog_map import load as load_map
from finsync.hub.catalog_map import problems as map_problems
from finsync.hub.close import PeriodClose
from finsync.hub.held_retry import HeldRetry, HeldRetryPolicy
from finsync.hub.mapping import CanonicalMapper, Mapper, MapperRegistry, TranslatingMapper
from finsync.hub.metrics import Metrics, measure
from finsync.hub.order_desk import OrderDesk
from finsync.hub.pipeline import DailyJob, Step
from finsync.hub.service import Hub, SourcePump
from finsync.hub.target import (
    Target,
    billing_target,
    ledger_target,
    revenue_target,
    tax_target,
)
from finsync.hub.usage import UsageIntake
from finsync.hub.webhook import CPQ_SCHEME, HUBSPOT_SCHEME, Verify, WebhookIntake
from finsync.recon.service import Entity, Reconciliation
from finsync.storage.call_log import CallLog
from finsync.storage.db import make_engine, read_only
from finsync.storage.migrate import current_revision, upgrade
from finsync.streaming.ownership import parse_partitions
from finsync.streaming.settings import TransportSettings
from finsync.systems.billing.catalog_file import (
    DEFAULT_CATALOG,
    load_billing_config,
    load_catalog,
    load_standalone_selling_prices,
)
from finsync.systems.billing.migrate import upgrade as upgrade_billing
from finsync.systems.billing.service import BillingService
from finsync.systems.billing.tax import TaxQuoter
from finsync.systems.ledger.chart import DEFAULT_CHART, parse_chart
from finsync.systems.ledger.fx import Rate
from finsync.systems.ledger.governance import Governor
from finsync.systems.ledger.migrate import upgrade as upgrade_ledger
from finsync.systems.ledger.rules import AccountMap
from finsync.systems.ledger.service import LedgerService
from finsync.systems.revrec.errors import AccountMappingError
from finsync.systems.revrec.migrate import upgrade as upgrade_revrec
from finsync.systems.revrec.pattern import RecognitionPattern
from finsync.systems.revrec.service import DEFAULT_ACCOUNTS, RevenueService
from finsync.systems.revrec.terms import RecognitionTerms
from finsync.systems.tax.config_file import load_tax_rules
from finsync.systems.tax.migrate import upgrade as upgrade_tax
from finsync.systems.tax.service import TaxService
from finsync.triage.policy import ApprovalPolicy
from finsync.triage.service import Triage

if TYPE_CHECKING:  # nats-py loads only in a process that speaks NATS
    from finsync.streaming.archiver import Archiver
    from finsync.streaming.client import JetStream
    from finsync.streaming.cluster import ClusterStatus
    from finsync.streaming.events_out import EventsOut
    from finsync.streaming.raw_publisher import RawPublisher
    from finsync.streaming.worker import WorkerNode

T = TypeVar("T")

DEFAULT_CATALOG_MAP = Path(__file__).with_name("default_cpq_catalog.toml")

log = logging.getLogger(__name__)


def build_ledger_service(config: FinsyncConfig, engine: Engine,
                         system: SystemSection | None = None,
                         clock: Callable[[], datetime] = utc_now) -> LedgerService:
    """The embedded ledger on the hub's database, its books set up from `[ledger]`."""
    upgrade_ledger(engine)
    governor = Governor(system.calls_per_minute, system.concurrency) if system else None
    service = LedgerService(engine, clock, governor, witness=record_change,
                            reader=read_only(engine))
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
    """The embedded billing catalogue, when billing is embedded (the shipped one if unset);
    None when billing is another system (Stripe), whose catalogue is its own."""
    for system in config.systems.values():
        if system.role == "billing" and system.connector == "embedded":
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
    products = load_catalog(catalog).products if catalog else ()
    terms = RecognitionTerms(patterns=tuple((p.id, RecognitionPattern(p.revenue_pattern))
                                            for p in products))

    def ssp(product_id: str, on: date) -> StandaloneSellingPrice | None:
        return next((p for p in prices if p.product_id == product_id and p.applies_on(on)),
                    None)

    accounts = {**DEFAULT_ACCOUNTS, **config.revenue.accounts}
    try:
        return RevenueService(engine, ssp, lambda _contract: terms, accounts,
                              reader=read_only(engine),
                              entity_accounts=config.revenue.entity_accounts)
    except AccountMappingError as exc:
        raise ConfigError(f"[revenue.accounts]: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Ports:
    """The configured systems, by name, behind their role's port."""

    ledgers: dict[str, LedgerPort] = field(default_factory=dict)
    revenues: dict[str, RevenuePort] = field(default_factory=dict)
    billing: dict[str, BillingRecordsPort] = field(default_factory=dict)
    taxes: dict[str, TaxPort] = field(default_factory=dict)
    # Billing systems that hold invoices for tax and retry them on request.
    held: dict[str, HeldInvoicePort] = field(default_factory=dict)
    # Billing systems that take the commercial layer's orders (`billing_target`).
    platforms: dict[str, SubscriptionPlatformPort] = field(default_factory=dict)

    def ledger(self) -> LedgerPort:
        return _only(self.ledgers, "ledger")

    def revenue(self) -> RevenuePort:
        return _only(self.revenues, "revenue")

    def billing_records(self) -> BillingRecordsPort:
        return _only(self.billing, "billing")

    def held_invoices(self) -> HeldInvoicePort | None:
        """The billing system that holds invoices for tax, if one is configured."""
        return next(iter(self.held.values()), None)

    def tax(self) -> TaxPort:
        return _only(self.taxes, "tax")

    def close(self) -> None:
        """Release the connections that remote systems' adapters hold open."""
        for port in [*self.ledgers.values(), *self.revenues.values(), *self.billing.values(),
                     *self.taxes.values(), *self.platforms.values()]:
            close = getattr(port, "close", None)
            if callable(close):
                close()


class SystemMissingError(ConfigError):
    """The configuration has no system of a role that what is being built needs (a worker
    without a revenue engine runs without the daily duty: `build_worker_stack`)."""


def _only(systems: Mapping[str, T], role: str) -> T:
    if not systems:
        hint = _HINTS.get(role, "")
        raise SystemMissingError(f"no system with role {role!r} is configured{hint}")
    return next(iter(systems.values()))


_HINTS = {"billing": ': add [systems.<name>] with role = "billing" and connector = "embedded", '
                     'or connector = "stripe" and source = "<a [stripe.<source>]>"',
          "tax": ': add [systems.<name>] with role = "tax" and connector = "embedded", or '
                 'connector = "http" and url = "<a finsync tax serve>"'}


@dataclass(frozen=True, slots=True)
class _Build:
    """What a connector factory builds with."""

    config: FinsyncConfig
    engine: Engine
    clock: Callable[[], datetime]
    recorder: CallRecorder


def build_call_log(config: FinsyncConfig, engine: Engine,
                   clock: Callable[[], datetime] = utc_now) -> CallLog:
    """The external-call log on the hub's database, kept `[calls] retention_days`."""
    return CallLog(engine, timedelta(days=config.calls.retention_days), clock)


def _filedrop_ledger(build: _Build, name: str, system: SystemSection, ports: Ports) -> None:
    ports.ledgers[name] = FileDropLedger(name, build.config.resolve(system.directory),
                                         recorder=build.recorder)


def _embedded_ledger(build: _Build, name: str, system: SystemSection, ports: Ports) -> None:
    service = build_ledger_service(build.config, build.engine, system, build.clock)
    ports.ledgers[name] = EmbeddedLedger(name, service, system.batch_size or 100,
                                         recorder=build.recorder)


def _tryton_ledger(build: _Build, name: str, system: SystemSection, ports: Ports) -> None:
    ports.ledgers[name] = build_tryton_ledger(build.config, name, system, build.recorder)


def _embedded_billing(build: _Build, name: str, system: SystemSection, ports: Ports) -> None:
    service = _billing_service(build.config, build.engine, system, build.clock)
    ports.billing[name] = EmbeddedBillingRecords(name, service)
    ports.held[name] = EmbeddedHeldInvoices(name, service)
    ports.platforms[name] = EmbeddedSubscriptionPlatform(name, service)


def _stripe_billing(build: _Build, name: str, system: SystemSection, ports: Ports) -> None:
    """A Stripe account as billing's books, read from the connector's local mirror (which
    the poller and the webhooks of `system.source` keep); and as the commercial layer's
    subscription platform when the routes send it orders or customers."""
    source = str(system.source)  # checked by the configuration
    stripe_state.upgrade(build.engine)
    section = _stripe_section(build.config, source)
    ports.billing[name] = StripeBillingRecords(name, build.engine, source,
                                               section.legal_entity, section.tax_breakdown_from)
    if _takes_orders(build.config, name):
        ports.platforms[name] = build_stripe_platform(build.config, build.engine, name, source,
                                                      build.clock, build.recorder)


# What the commercial layer sends a subscription platform (the order desk's routes).
_PLATFORM_EVENTS = (EventType.COMMERCIAL_CONTRACT_APPROVED.value,
                    EventType.CUSTOMER_UPSERTED.value)


def _takes_orders(config: FinsyncConfig, name: str) -> bool:
    """Whether the configuration routes orders or customers to billing system `name`: a
    Stripe account is the commercial layer's platform only then (a company that bills in
    Stripe without CPQ has no catalogue map to load)."""
    return any(name in config.routes.get(kind, ()) for kind in _PLATFORM_EVENTS)


def build_stripe_platform(config: FinsyncConfig, engine: Engine, name: str, source: str,
                          clock: Callable[[], datetime] = utc_now,
                          recorder: CallRecorder | None = None) -> StripeSubscriptionPlatform:
    """The Stripe account of `source` as the subscription platform `name` (the commercial
    layer's orders and the customer master's customers), its prices resolved through
    `[stripe.<source>.catalog] billing_prices`."""
    stripe_state.upgrade(engine)
    section = _stripe_section(config, source)
    settings = OrderSettings(dict(section.catalog.billing_prices), section.price_parameter)
    return StripeSubscriptionPlatform(name, source,
                                      partial(build_stripe_client, config, source, recorder),
                                      engine, stripe_settings(config, source), settings, clock)


def _embedded_revenue(build: _Build, name: str, system: SystemSection, ports: Ports) -> None:
    ports.revenues[name] = EmbeddedRevenue(name, build_revenue_service(build.config,
                                                                       build.engine),
                                           recorder=build.recorder)


def build_tax_service(config: FinsyncConfig, engine: Engine,
                      clock: Callable[[], datetime] = utc_now) -> TaxService:
    """The embedded tax engine on the hub's database, its master data loaded from `[tax]
    file` (the shipped default_tax.toml when unset) and rewritten when it differs."""
    upgrade_tax(engine)
    service = TaxService(engine, clock)
    service.load_rules(load_tax_rules(config.resolve(config.tax.file) if config.tax.file
                                      else None))
    return service


def _embedded_tax(build: _Build, name: str, system: SystemSection, ports: Ports) -> None:
    ports.taxes[name] = EmbeddedTax(name, build_tax_service(build.config, build.engine,
                                                            build.clock),
                                    recorder=build.recorder)


def _http_tax(build: _Build, name: str, system: SystemSection, ports: Ports) -> None:
    """A tax engine in its own process (`finsync tax serve`) at `url`, its bearer token in
    the environment variable `token_env`."""
    if not system.url:
        raise ConfigError(f"[systems.{name}]: connector \"http\" needs url = \"http://...\"")
    token = build.config.secret(f"[systems.{name}] token", system.token_env, None)
    ports.taxes[name] = HttpTax(name, system.url, token.reveal(), system.timeout_s,
                                recorder=build.recorder)


def build_tax_server(config: FinsyncConfig, engine: Engine, token_env: str,
                     clock: Callable[[], datetime] = utc_now) -> Starlette:
    """The embedded tax engine's own HTTP API (`finsync tax serve`), for callers holding
    the bearer token in the environment variable `token_env`."""
    token = config.secret("tax engine token", token_env, None)
    port = EmbeddedTax("tax", build_tax_service(config, engine, clock),
                       recorder=build_call_log(config, engine, clock))
    return create_tax_app(port, token.reveal())


def build_tax_port(config: FinsyncConfig, engine: Engine,
                   clock: Callable[[], datetime] = utc_now,
                   recorder: CallRecorder | None = None) -> TaxPort:
    """The configured tax engine behind the tax port (billing's quoter): the one
    `[systems.<name>]` with role "tax"; a `ConfigError` when there is none. Its calls go
    to `recorder` (the call log by default)."""
    ports = Ports()
    build = _Build(config, engine, clock, recorder or build_call_log(config, engine, clock))
    for name, system in config.systems.items():
        if system.role == "tax":
            _build_system(build, name, system, ports)
    return ports.tax()


# Which adapter plays each (role, connector) of `[systems.<name>]`.
_FACTORIES: Mapping[tuple[str, str], Callable[[_Build, str, SystemSection, Ports], None]] = {
    ("ledger", "embedded"): _embedded_ledger,
    ("ledger", "filedrop"): _filedrop_ledger,
    ("ledger", "tryton"): _tryton_ledger,
    ("billing", "embedded"): _embedded_billing,
    ("billing", "stripe"): _stripe_billing,
    ("revenue", "embedded"): _embedded_revenue,
    ("tax", "embedded"): _embedded_tax,
    ("tax", "http"): _http_tax,
}


def build_ports(config: FinsyncConfig, engine: Engine,
                clock: Callable[[], datetime] = utc_now) -> Ports:
    ports = Ports()
    build = _Build(config, engine, clock, build_call_log(config, engine, clock))
    for name, system in config.systems.items():
        _build_system(build, name, system, ports)
    return ports


def _build_system(build: _Build, name: str, system: SystemSection, ports: Ports) -> None:
    factory = _FACTORIES.get((system.role, system.connector))
    if factory is None:
        raise ConfigError(f"[systems.{name}]: no {system.connector} connector for the "
                          f"{system.role} role yet")
    factory(build, name, system, ports)


def build_targets(config: FinsyncConfig, engine: Engine,
                  clock: Callable[[], datetime] = utc_now,
                  ports: Ports | None = None) -> dict[str, Target]:
    """Ledgers, revenue engines and tax engines receive; billing is a source (see
    build_pumps) and, when its port takes orders, the commercial layer's target (the
    catalogue map loaded first: `load_catalog_map`)."""
    ports = ports or build_ports(config, engine, clock)
    targets = {name: ledger_target(port) for name, port in ports.ledgers.items()}
    targets.update({name: revenue_target(port) for name, port in ports.revenues.items()})
    targets.update({name: tax_target(port) for name, port in ports.taxes.items()})
    if ports.platforms:
        load_catalog_map(config, engine, clock)
        desk = OrderDesk(engine, clock)
        targets.update({name: billing_target(port, desk)
                        for name, port in ports.platforms.items()})
    return targets


def load_catalog_map(config: FinsyncConfig, engine: Engine,
                     clock: Callable[[], datetime] = utc_now) -> CatalogLoad:
    """Load `[cpq] catalog` (the shipped default_cpq_catalog.toml when unset) into the
    hub's tables, checked against the embedded billing catalogue, the revenue catalogue
    and the embedded ledger's charts (what is external is not checked); a new version
    retries the orders held for an unmapped product. `ConfigError` names every problem."""
    path, text = _catalog_map_text(config)
    try:
        return load_map(engine, text, str(path), _known_to_systems(config), clock)
    except CatalogMapError as exc:
        raise ConfigError(f"[cpq] catalog: {exc}") from None


def check_catalog_map(config: FinsyncConfig) -> tuple[Path, CatalogMap]:
    """The catalogue map `[cpq] catalog` names, checked as `load_catalog_map` checks it,
    stored nowhere (`finsync cpq catalog check`). `ConfigError` names every problem."""
    path, text = _catalog_map_text(config)
    try:
        catalog = parse_map(text)
    except CatalogMapError as exc:
        raise ConfigError(f"[cpq] catalog: {path}: {exc}") from None
    known = _known_to_systems(config)
    wrong = map_problems(catalog, known)
    if wrong:
        raise ConfigError(f"[cpq] catalog: {path}: {'; '.join(wrong)}")
    # As it would be stored: billing's price periods filled in (a digest to compare).
    return path, with_price_months(catalog, known)


def catalog_map_in_force(engine: Engine) -> tuple[int, CatalogMap] | None:
    """The catalogue map version in force and its map; None before one is loaded."""
    try:
        return current_map(engine)
    except CatalogMapError:
        return None


def _catalog_map_text(config: FinsyncConfig) -> tuple[Path, str]:
    path = config.resolve(config.cpq.catalog) if config.cpq.catalog else DEFAULT_CATALOG_MAP
    try:
        return path, path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"[cpq] catalog: cannot read {path}: {exc}") from None


def _known_to_systems(config: FinsyncConfig) -> Known:
    catalog = _billing_catalog(config)
    prices = None
    periods = None
    if catalog is not None:
        plans = load_catalog(catalog).plans
        prices = {plan.price.id: (plan.price.product_id, plan.price.unit_amount.currency)
                  for plan in plans}
        periods = {plan.price.id: None if plan.is_usage else plan.price.frequency.months
                   for plan in plans}
    accounts = None
    ledgers = [s for s in config.systems.values() if s.role == "ledger"]
    if ledgers and all(s.connector == "embedded" for s in ledgers) and config.ledger.entities:
        charts = [parse_chart(config.resolve(e.chart).read_text() if e.chart
                              else DEFAULT_CHART.read_text()) for e in config.ledger.entities]
        # An account every entity's chart has (an order may be booked by any entity).
        codes = [frozenset(a.code for a in chart.accounts) for chart in charts]
        accounts = frozenset.intersection(*codes)
    return Known(prices, revenue_products(config), accounts, periods)


def build_tryton_ledger(config: FinsyncConfig, name: str, system: SystemSection,
                        recorder: CallRecorder | None = None) -> TrytonLedger:
    """Tryton behind the ledger port, from `[systems.<name>]` (the password from the
    secret file or the environment variable the section names); its requests go to
    `recorder`, if any."""
    url, database = system.url, system.database
    if not url or not database or not system.companies:
        raise ConfigError(f"[systems.{name}]: a tryton ledger needs url, database, companies")
    password = config.secret(f"[systems.{name}] password", system.password_env,
                             system.password_file).reveal()
    try:
        accounts = TrytonAccountMap(codes={TrytonRole(role): code
                                           for role, code in system.accounts.items()})
    except ValueError as exc:
        raise ConfigError(f"[systems.{name}].accounts: {exc}; roles are "
                          f"{', '.join(TrytonRole)}") from exc
    entities = {entity: TrytonEntity(company, accounts)
                for entity, company in system.companies.items()}
    def connect() -> TrytonClient:
        return TrytonClient(url, database, system.user, password,
                            recorder=recorder or NO_RECORDER, system=name)

    return TrytonLedger(name, connect, entities, max_batch=system.max_batch)


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
    catalog = config.resolve(system.catalog) if system.catalog else None
    load_catalog(catalog)  # a bad catalogue touches no database (the tax engine's either)
    billing_config = load_billing_config(catalog, tax=_billing_tax(config, engine, clock))
    upgrade_billing(engine)
    return billing_service(engine, billing_config, clock)


def _billing_tax(config: FinsyncConfig, engine: Engine,
                 clock: Callable[[], datetime]) -> TaxQuoter:
    """The tax engine billing asks for every invoice: the configured tax system's port.
    Billing asks it inside its own write transaction, so an embedded engine on the same
    SQLite file must read without taking the write lock (`read_only`): its quote only
    reads, and a write transaction would wait for billing's, which waits for the quote.
    A configuration written before tax was a system of its own names none: billing then
    asks the embedded engine on the hub's database (the `[tax] file`, else the shipped
    rates, which are the ones billing's catalogue used to carry), and logs it at info
    level (a warning would print on every command, into its JSON)."""
    reader = read_only(engine)
    if any(system.role == "tax" for system in config.systems.values()):
        # Nor can a call log on that file be written there: billing's quotes are not
        # logged (what the engine answered is on each invoice line, as its jurisdiction
        # lines).
        return build_tax_port(config, reader, clock, NO_RECORDER)
    log.info("no [systems.<name>] with role \"tax\" is configured: billing asks the "
                "embedded tax engine")
    return EmbeddedTax("tax", build_tax_service(config, reader, clock))


def build_pumps(config: FinsyncConfig, engine: Engine,
                clock: Callable[[], datetime] = utc_now) -> dict[str, SourcePump]:
    """Embedded billing pushes its outbox of canonical events into the hub's intake."""
    pumps: dict[str, SourcePump] = {
        source: OutboxPublisher(_billing_service(config, engine, config.systems[name],
                                                 clock)).publish
        for source, name in config.pumps.items()}
    for source, section in config.stripe.items():
        if section.poll_on_run:  # catch-up of missed webhooks before every pipeline run
            pumps[source] = _pump_all(build_stripe_pollers(config, engine, source))
    for source, hubspot in config.hubspot.items():
        if hubspot.fetch_on_run:  # what the webhooks named, read before every run
            pumps[source] = build_hubspot_fetcher(config, engine, source, clock).pump
    return pumps


def _pump_all(pollers: Sequence[Poller]) -> SourcePump:
    """One pump over a source's pollers (its own account's, then each Connect account's):
    each logs its own failure and the others still run."""
    def pump(send: Callable[[Sequence[bytes]], object]) -> int:
        return sum(poller.pump(send) for poller in pollers)
    return pump


def build_mappers(config: FinsyncConfig) -> MapperRegistry:
    def mapper(source: str, kind: str) -> Mapper:
        limits = config.limits_for(source)
        if kind == "stripe":
            return TranslatingMapper(partial(stripe_translate,
                                             stripe_settings(config, source)), limits)
        if kind == "hubspot":
            return TranslatingMapper(partial(hubspot_translate,
                                             hubspot_settings(config, source)), limits)
        if kind == "cpq":
            return TranslatingMapper(partial(cpq_document.translate,
                                             cpq_document_settings(config, source)), limits)
        if kind == "salesforce_cpq":
            return TranslatingMapper(partial(salesforce_translate,
                                             salesforce_settings(config, source)), limits)
        return CanonicalMapper(limits)
    return MapperRegistry({source: mapper(source, kind)
                           for source, kind in config.sources.items()})


def _cpq_section(config: FinsyncConfig, source: str) -> CpqSourceSection:
    if source not in config.cpq_sources:
        raise ConfigError(f"no CPQ source {source!r}; configured: "
                          f"{', '.join(sorted(config.cpq_sources)) or 'none'}")
    return config.cpq_sources[source]


def cpq_document_settings(config: FinsyncConfig, source: str) -> DocumentSettings:
    """How CPQ source `source` reads finsync's CPQ JSON: its legal entity default and its
    limits (also what `connectors.cpq.filedrop.load_file` takes for a file of `source`)."""
    section = _cpq_section(config, source)
    return DocumentSettings(section.legal_entity, config.limits_for(source),
                            _cpq_limits(section))


def load_cpq_file(config: FinsyncConfig, source: str, path: Path,
                  received_on: date) -> FileDrop:
    """A dropped CSV or JSON-lines file for CPQ source `source` (of kind "cpq"): one body per
    contract version (or customer), every problem listed by row, each value checked against
    the source's limits as of `received_on`. Store the bodies with `Hub.store(source, …)`
    only when `ok`; raises `FileDropError` for a file that cannot be read at all."""
    if config.sources.get(source) != "cpq":
        raise ConfigError(f"{source!r} is not a source of kind \"cpq\": files hold finsync's "
                          "CPQ JSON or CSV (docs/cpq/sources.md)")
    return load_cpq_drop(path, cpq_document_settings(config, source), received_on)


def salesforce_settings(config: FinsyncConfig, source: str) -> SalesforceSettings:
    section = _cpq_section(config, source)
    if section.legal_entity is None:
        raise ConfigError(f"[cpq_sources.{source}] needs legal_entity")
    return SalesforceSettings(section.legal_entity, section.currency,
                              BillingFrequency(section.billing_frequency),
                              ProrationTerms(section.proration), config.limits_for(source),
                              _cpq_limits(section))


def _cpq_limits(section: CpqSourceSection) -> CpqLimits:
    return CpqLimits(lines_max=section.lines_max, ramp_steps_max=section.ramp_steps_max)


def stripe_settings(config: FinsyncConfig, source: str) -> SourceSettings:
    """The mapping settings of Stripe source `source`; its catalogue may name only products
    the revenue catalogue knows (`revenue_products`), else `ConfigError`."""
    section = _stripe_section(config, source)
    known = revenue_products(config)
    named = {**section.catalog.prices, **section.catalog.products}
    unknown = sorted(f"{stripe_id} -> {product}" for stripe_id, product in named.items()
                     if known is not None and product not in known)
    if unknown:
        raise ConfigError(f"[stripe.{source}.catalog] maps to products the revenue catalogue "
                          f"does not know (no SSP, not a catalogue product): "
                          f"{', '.join(unknown[:10])}")
    catalog = Catalog(dict(section.catalog.prices), dict(section.catalog.products))
    return SourceSettings(section.legal_entity, section.default_country,
                          section.default_currency, section.fallback_product, catalog,
                          dict(section.connected_accounts), section.tax_breakdown_from,
                          dict(section.catalog.billing_prices))


def revenue_products(config: FinsyncConfig) -> frozenset[str] | None:
    """The products of the revenue catalogue (`[[revenue.ssp]]`, and the embedded billing
    catalogue's products and SSPs when billing is embedded); None with no revenue system."""
    if not any(system.role == "revenue" for system in config.systems.values()):
        return None
    catalog = _billing_catalog(config)
    products = {s.product_id for s in config.revenue.ssp}
    if catalog is not None:
        products |= {s.product_id for s in load_standalone_selling_prices(catalog)}
        products |= {p.id for p in load_catalog(catalog).products}
    return frozenset(products)


def _hubspot_section(config: FinsyncConfig, source: str) -> HubSpotSection:
    if source not in config.hubspot:
        raise ConfigError(f"no HubSpot source {source!r}; configured: "
                          f"{', '.join(sorted(config.hubspot)) or 'none'}")
    return config.hubspot[source]


def hubspot_settings(config: FinsyncConfig, source: str) -> HubSpotSettings:
    """The mapping settings of HubSpot source `source`."""
    section = _hubspot_section(config, source)
    return HubSpotSettings(section.legal_entity, section.default_currency.upper(),
                           frozenset(section.approved_stages), section.vat_property,
                           section.kind_property, section.term_start_property,
                           section.term_end_property, ProrationTerms(section.proration),
                           config.limits_for(source))


def build_hubspot_client(config: FinsyncConfig, source: str,
                         recorder: CallRecorder | None = None) -> HubSpotClient:
    """HubSpot's CRM API for `source`, with the access token its section names."""
    section = _hubspot_section(config, source)
    token = config.secret(f"[hubspot.{source}] access token", section.access_token_env,
                          section.access_token_file)
    extras = tuple(p for p in (section.kind_property, section.term_start_property,
                               section.term_end_property) if p)
    settings = HubSpotClientSettings(token.reveal(), section.base_url, section.timeout_s,
                                     deal_properties=extras,
                                     company_properties=(section.vat_property,))
    return HubSpotClient(source, settings, recorder=recorder or NO_RECORDER)


def build_hubspot_fetcher(config: FinsyncConfig, engine: Engine, source: str,
                          clock: Callable[[], datetime] = utc_now) -> HubSpotFetcher:
    """The fetcher of `source`: what its webhooks named, read and stored as snapshots."""
    hubspot_state.upgrade(engine)
    client = build_hubspot_client(config, source, build_call_log(config, engine, clock))
    return HubSpotFetcher(client, hubspot_state.FetchState(engine, source, clock),
                          hubspot_settings(config, source), clock,
                          _hubspot_section(config, source).batch_max)


def build_stripe_client(config: FinsyncConfig, source: str,
                        recorder: CallRecorder | None = None,
                        account: str | None = None) -> StripeClient:
    """Stripe's API for `source` (acting for the Connect account `account`, if given); its
    requests go to `recorder`, if any."""
    section = _stripe_section(config, source)
    api_key = config.secret(f"[stripe.{source}] api key", section.api_key_env,
                            section.api_key_file)
    settings = ClientSettings(api_key.reveal(), section.base_url, section.api_version,
                              section.timeout_s, account=account)
    return StripeClient(source, settings, recorder=recorder or NO_RECORDER)


def start_stripe_poll_at(config: FinsyncConfig, engine: Engine, source: str,
                         created: int) -> None:
    """Make the catch-up poller of `source` start at the events created at or after
    `created` (unix seconds): the account's earlier events are not read."""
    _stripe_section(config, source)
    stripe_state.upgrade(engine)
    stripe_state.PollState(engine, source, utc_now).save_cursor(f"{created}:")


def build_stripe_poller(config: FinsyncConfig, engine: Engine, source: str,
                        account: str | None = None) -> Poller:
    """The catch-up poller of `source`'s own account, or of one of its Connect accounts
    (its own cursor and versions, kept under `<source>@<account>`); what it stores is
    recorded in the local mirror."""
    mirror = build_stripe_mirror(engine)
    key = source if account is None else f"{source}@{account}"
    return Poller(build_stripe_client(config, source, build_call_log(config, engine), account),
                  stripe_state.PollState(engine, key, utc_now), mirror=mirror, account=account)


def build_stripe_pollers(config: FinsyncConfig, engine: Engine, source: str) -> list[Poller]:
    """The pollers of `source`: its own account's, then each Connect account's."""
    accounts = sorted(_stripe_section(config, source).connected_accounts)
    return [build_stripe_poller(config, engine, source),
            *(build_stripe_poller(config, engine, source, a) for a in accounts)]


def build_stripe_verifier(config: FinsyncConfig, engine: Engine, source: str,
                          clock: Callable[[], datetime] = utc_now) -> Verifier:
    """`finsync stripe verify`: the mirror of `source` against Stripe's API."""
    stripe_state.upgrade(engine)
    client = build_stripe_client(config, source, build_call_log(config, engine, clock))
    return Verifier(engine, source, client, STRIPE_FETCHABLE, clock)


def build_stripe_mirror(engine: Engine) -> Mirror:
    """The Stripe connector's local mirror of its accounts' objects, its tables migrated."""
    stripe_state.upgrade(engine)
    return Mirror(engine)


def _stripe_section(config: FinsyncConfig, source: str) -> StripeSection:
    if source not in config.stripe:
        raise ConfigError(f"no Stripe source {source!r}; configured: "
                          f"{', '.join(sorted(config.stripe)) or 'none'}")
    return config.stripe[source]


def webhook_secrets(config: FinsyncConfig, source: str) -> list[RotatingSecret]:
    """Every webhook secret `[stripe.<source>]` names, each valid until its `not_after`.
    Each must be readable, even one past its `not_after` (remove it from the file then)."""
    section = _stripe_section(config, source)
    return [RotatingSecret(config.secret(f"[stripe.{source}].webhook_secrets[{i}]",
                                         named.env, named.file), named.not_after)
            for i, named in enumerate(section.webhook_secrets)]


def build_webhooks(config: FinsyncConfig, engine: Engine,
                   clock: Callable[[], datetime] = utc_now) -> Mapping[str, WebhookIntake]:
    """A signed-webhook intake per Stripe source (whose stored events the local mirror
    records), per CPQ source and per HubSpot source. Rotation: a request signed with any
    secret valid at the time it is received is accepted; an expired one verifies nothing."""
    return {**_stripe_webhooks(config, engine, clock), **_cpq_webhooks(config, engine, clock),
            **_hubspot_webhooks(config, engine, clock)}


def _stripe_webhooks(config: FinsyncConfig, engine: Engine,
                     clock: Callable[[], datetime]) -> dict[str, WebhookIntake]:
    secrets = {source: webhook_secrets(config, source) for source in config.stripe}
    if not secrets:
        return {}
    mirror = build_stripe_mirror(engine)
    intakes: dict[str, WebhookIntake] = {}
    for source, section in config.stripe.items():
        verify = partial(_verify_signed, stripe_signature.verify, stripe_signature.HEADER,
                         secrets[source], section.tolerance_s, clock)
        intakes[source] = WebhookIntake(engine, source, verify, clock,
                                        observe=partial(_mirrored, mirror, source))
    return intakes


def cpq_signing_secrets(config: FinsyncConfig, source: str) -> list[RotatingSecret]:
    """Every signing secret `[cpq_sources.<source>]` names, each valid until its
    `not_after`; each must be readable."""
    section = _cpq_section(config, source)
    return [RotatingSecret(config.secret(f"[cpq_sources.{source}].signing_secrets[{i}]",
                                         named.env, named.file), named.not_after)
            for i, named in enumerate(section.signing_secrets)]


def _cpq_webhooks(config: FinsyncConfig, engine: Engine,
                  clock: Callable[[], datetime]) -> dict[str, WebhookIntake]:
    intakes: dict[str, WebhookIntake] = {}
    for source, section in config.cpq_sources.items():
        verify: Verify = partial(_verify_signed, cpq_signature.verify, cpq_signature.HEADER,
                                 cpq_signing_secrets(config, source), section.tolerance_s,
                                 clock)
        if not section.signing_secrets:
            verify = partial(_unsigned, source)
        intakes[source] = WebhookIntake(engine, source, verify, clock, scheme=CPQ_SCHEME)
    return intakes


def _unsigned(source: str, body: bytes, headers: Mapping[str, str]) -> int:
    raise SignatureError(f"source {source} takes file drops only: no signing secret is "
                         f"configured ([cpq_sources.{source}] signing_secrets)",
                         code="no_signing_secret")


def _verify_signed(check: Callable[[bytes, str | None, Sequence[str], datetime, int], int],
                   header: str, secrets: Sequence[RotatingSecret], tolerance_s: int,
                   clock: Callable[[], datetime], body: bytes,
                   headers: Mapping[str, str]) -> int:
    """A body signed with Stripe's scheme (`connectors.signed_body`) in `header`, by one of
    the secrets valid now."""
    now = clock()
    return check(body, headers.get(header), valid_at(secrets, now), now, tolerance_s)


def _hubspot_webhooks(config: FinsyncConfig, engine: Engine,
                      clock: Callable[[], datetime]) -> dict[str, WebhookIntake]:
    """A signed-webhook intake per HubSpot source (v3 signatures with the app's client
    secrets, rotating like Stripe's); each stored body queues the objects it names for the
    fetcher."""
    if not config.hubspot:
        return {}
    hubspot_state.upgrade(engine)
    intakes: dict[str, WebhookIntake] = {}
    for source, section in config.hubspot.items():
        secrets = [RotatingSecret(config.secret(f"[hubspot.{source}].client_secrets[{i}]",
                                                named.env, named.file), named.not_after)
                   for i, named in enumerate(section.client_secrets)]

        def verify(body: bytes, headers: Mapping[str, str],
                   secrets: list[RotatingSecret] = secrets,
                   section: HubSpotSection = section) -> int:
            now = clock()
            current = valid_at(secrets, now)
            if not current:
                raise SignatureError("every client secret of this source is past its "
                                     "not_after", code="no_current_secret")
            return hubspot_signature.verify(body, headers, section.webhook_url, current, now,
                                            section.tolerance_s)
        state = hubspot_state.FetchState(engine, source, clock)
        intakes[source] = WebhookIntake(
            engine, source, verify, clock, scheme=HUBSPOT_SCHEME,
            observe=partial(hubspot_fetcher.note, state, limits=config.limits_for(source)))
    return intakes


def _mirrored(mirror: Mirror, source: str, body: bytes) -> None:
    mirror.record(source, [body])


def _upgrade_hub(engine: Engine) -> None:
    """The schemas every hub database holds: the hub's, the audit trail's, the API
    tokens' and the two-person controls'."""
    upgrade(engine)
    upgrade_audit(engine)
    upgrade_auth(engine)
    upgrade_controls(engine)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def build_engine(config: FinsyncConfig, url: str | None = None) -> Engine:
    """The database of `config` (or `url`, when a command names one explicitly)."""
    url = url or config.database_url
    if url.startswith("sqlite:///") and ":memory:" not in url:
        config.resolve(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return make_engine(url)


def build_token_store(config: FinsyncConfig) -> Engine:
    """The database that holds the API tokens (the hub's), with its schemas up to date:
    a token change is recorded in the audit trail there."""
    engine = build_engine(config)
    _upgrade_hub(engine)
    return engine


def build_hub(config: FinsyncConfig, *, engine: Engine | None = None,
              migrate: bool = True, clock: Callable[[], datetime] = utc_now,
              ports: Ports | None = None) -> Hub:
    engine = engine or build_engine(config)
    if migrate:
        _upgrade_hub(engine)
    ports = ports or build_ports(config, engine, clock)
    return Hub(engine, config.hub_settings(), build_mappers(config),
               build_targets(config, engine, clock, ports), clock, worker_id(),
               build_pumps(config, engine, clock), buffered_ledgers(config, ports))


def buffered_ledgers(config: FinsyncConfig,
                     ports: Ports) -> dict[str, tuple[LedgerPort, BufferPolicy]]:
    """Every ledger goes through the posting buffer with its system's budget (documents per
    call: the system's `batch_size`, else as many as the port takes in one call)."""
    return {name: (port, BufferPolicy(
        system.calls_per_minute, system.concurrency, system.batch_size, system.posting,
        daily_cap=system.daily_cap))
        for name, port in ports.ledgers.items()
        for system in [config.systems[name]]}


@dataclass(frozen=True, slots=True)
class Finance:
    """Everything finance works with: the hub, the systems' ports, period close,
    reconciliation and the exception queue, on one database and one clock."""

    hub: Hub
    ports: Ports
    close: PeriodClose
    recon: Reconciliation
    triage: Triage
    audit: AuditTrail
    calls: CallLog

    def dispose(self) -> None:
        """Release the remote systems' connections and the database pool."""
        self.ports.close()
        self.hub.engine.dispose()


def build_finance(config: FinsyncConfig, *, engine: Engine | None = None,
                  clock: Callable[[], datetime] = utc_now) -> Finance:
    """The finance stack of `config` (`SystemMissingError` when it lacks a system finance
    needs: a ledger, a revenue engine, a billing system); the ports' connections are closed
    when it cannot be built."""
    engine = engine or build_engine(config)
    _upgrade_hub(engine)
    ports = build_ports(config, engine, clock)
    try:
        return _finance(config, engine, clock, ports)
    except BaseException:
        ports.close()
        raise


def _finance(config: FinsyncConfig, engine: Engine, clock: Callable[[], datetime],
             ports: Ports) -> Finance:
    hub = build_hub(config, engine=engine, migrate=False, clock=clock, ports=ports)
    entities = [Entity(e.id, e.functional_currency) for e in config.ledger.entities]
    audit = build_audit(config, engine, clock)
    return Finance(
        hub, ports,
        PeriodClose(hub, ports.ledger(), ports.revenue(), audit.checkpoint_if_signing),
        Reconciliation(engine, ports.billing_records(), ports.ledger(), ports.revenue(),
                       entities, clock),
        Triage(engine, ApprovalPolicy(config.triage.approval_threshold, config.triage.thresholds,
                                      timedelta(hours=config.controls.pending_ttl_h)),
               ports.ledgers.get, clock, ports.held_invoices()),
        audit, build_call_log(config, engine, clock))


def build_keyring(config: FinsyncConfig) -> Keyring:
    """The audit signing key named by `[audit]` (read now) and the trusted public keys."""
    section = config.audit
    file = config.resolve(section.signing_key_file) if section.signing_key_file else None
    return Keyring.of(load_signer(file, section.signing_key_env), tuple(section.public_keys))


def build_audit(config: FinsyncConfig, engine: Engine,
                clock: Callable[[], datetime] = utc_now) -> AuditTrail:
    return AuditTrail(engine, build_keyring(config), clock)


def open_audit(config: FinsyncConfig) -> AuditTrail:
    """The configured database's audit trail, migrated; the caller disposes its engine."""
    engine = build_engine(config)
    try:
        _upgrade_hub(engine)
        return build_audit(config, engine)
    except BaseException:
        engine.dispose()
        raise


def build_daily(finance: Finance) -> Callable[[date], object]:
    """The daily job: the call log's purge past its retention, reconciliation as of the
    day (unless a run as of that day is recorded already), then the audit checkpoint. Each
    runs even when another fails; the first failure is raised afterwards, so that the job is
    tried again."""
    def purge(_day: date) -> None:
        purged = finance.calls.purge()
        if purged:
            log.info("call log: %d calls older than %s purged", purged,
                     finance.calls.retention)

    def reconcile(day: date) -> None:
        if finance.recon.stored(day):  # a restart on the same day does not run it again
            return
        # Checked again when recording: another worker's daily job may have run the day
        # meanwhile (`streaming.singleton`: a holder that lost its lease mid-run).
        report = finance.recon.run(day, unless_recorded=True)
        log.info("daily job: reconciliation as of %s: %d checks, %d unexplained breaks",
                 day, len(report.checks), len(report.unexplained))

    def daily(day: date) -> None:
        failures: list[Exception] = []
        for job in (purge, reconcile, finance.audit.daily):
            try:
                job(day)
            except Exception as exc:  # re-raised below, after the other job
                failures.append(exc)
        if failures:
            raise failures[0]
    return daily


def build_held_retry(finance: Finance) -> HeldRetry | None:
    """`serve`'s periodic retry of invoices held for tax, when billing holds them."""
    port = finance.ports.held_invoices()
    if port is None:
        return None
    return HeldRetry(finance.hub.engine, port, finance.hub.clock, HeldRetryPolicy())


def build_daily_duty(finance: Finance) -> list[Step]:
    """A worker's `daily` duty: `serve`'s daily job on its schedule (`DailyJob`: once per
    day of the clock, as of yesterday, tried again until it succeeds) and, when billing holds
    invoices for tax, their retry."""
    steps: list[Step] = [DailyJob(build_daily(finance), finance.hub.clock)]
    held = build_held_retry(finance)
    if held is not None:
        steps.append(held.step)
    return steps


def build_two_person(config: FinsyncConfig, engine: Engine,
                     clock: Callable[[], datetime] = utc_now) -> TwoPerson:
    """The two-person request store (the database is migrated by whoever built `engine`)."""
    return TwoPerson(engine, clock, timedelta(hours=config.controls.pending_ttl_h))


def build_config_control(config: FinsyncConfig, engine: Engine,
                         clock: Callable[[], datetime] = utc_now) -> ConfigControl:
    return ConfigControl(engine, build_two_person(config, engine, clock), clock)


def approved_config(config: FinsyncConfig, engine: Engine,
                    clock: Callable[[], datetime] = utc_now) -> str:
    """The fingerprint of `config`'s controlled sections, if approved for this database
    (`serve`, `run`, the pipeline and finance's actions call it before they use
    `config`), else `ConfigNotApprovedError`."""
    return build_config_control(config, engine, clock).check(config)


def build_period_control(config: FinsyncConfig, engine: Engine,
                         clock: Callable[[], datetime] = utc_now) -> PeriodControl:
    """Period close and the two-person reopen of the embedded ledger (each change is
    audited, so the database holds the audit and controls schemas first)."""
    upgrade_audit(engine)
    upgrade_controls(engine)
    return PeriodControl(build_two_person(config, engine, clock),
                         build_ledger_service(config, engine, clock=clock))


def measure_metrics(finance: Finance) -> Metrics:
    """The metrics of DESIGN §7 as the store holds them now (the console's JSON and the
    Prometheus text are both this)."""
    hub = finance.hub
    return measure(hub.engine, list(finance.ports.ledgers), list(finance.ports.revenues),
                   hub.clock())


def build_metrics(finance: Finance, config: FinsyncConfig | None = None
                  ) -> Callable[[], str]:
    """The metrics of DESIGN §7 in the Prometheus text format, read when called; with a
    `config` whose transport is NATS, the cluster's after them (`streaming.metrics`)."""
    cluster = None if config is None else _cluster_metrics(config, finance.hub.engine)

    def metrics() -> str:
        text = measure_metrics(finance).as_prometheus()
        return text if cluster is None else text + cluster()
    return metrics


def _cluster_metrics(config: FinsyncConfig, engine: Engine) -> Callable[[], str] | None:
    """The cluster's metrics, through one JetStream connection made at the first scrape
    (none when the transport is in-process)."""
    settings = config.transport.to_settings()
    if settings.kind != "nats":
        return None
    from finsync.streaming.client import JetStream
    from finsync.streaming.cluster import survey
    from finsync.streaming.metrics import as_prometheus as cluster_prometheus

    made: list[JetStream] = []
    lock = threading.Lock()

    def metrics() -> str:
        with lock:
            if not made:
                made.append(JetStream(settings, f"metrics-{socket.gethostname()}-{os.getpid()}"))
            js = made[0]
        return cluster_prometheus(survey(js, engine, settings))
    return metrics


def survey_cluster(config: FinsyncConfig) -> ClusterStatus:
    """The cluster as `finsync cluster status` shows it (`ConfigError` unless the transport
    is NATS)."""
    settings = nats_settings(config, "finsync cluster status", refusal=ConfigError)
    from finsync.streaming.client import JetStream
    from finsync.streaming.cluster import survey

    engine = build_engine(config)
    js = JetStream(settings, f"status-{socket.gethostname()}-{os.getpid()}")
    try:
        return survey(js, engine, settings)
    finally:
        js.close()
        engine.dispose()


def build_events_out(config: FinsyncConfig, engine: Engine, js: JetStream,
                     name: str) -> EventsOut:
    """The events-out relay a worker runs beside its partitions (one publishes at a time,
    cluster-wide: `streaming.events_out`)."""
    from finsync.streaming.events_out import EventsOut

    return EventsOut(engine, js, config.transport.to_settings(), name)


def build_usage(config: FinsyncConfig, engine: Engine | None = None,
                clock: Callable[[], datetime] = utc_now) -> UsageIntake:
    """Usage intake for the `[usage]` sources; totals go to the embedded billing platform
    (none configured: they wait, pending). A source under `[usage.stripe]` reads Stripe's
    meter events through its Stripe account. Without `engine`, the configured database,
    migrated."""
    if engine is None:
        engine = build_engine(config)
        _upgrade_hub(engine)
    name = next((n for n, s in config.systems.items()
                 if s.role == "billing" and s.connector == "embedded"), None)
    port = None
    if name is not None:
        port = EmbeddedUsage(name, _billing_service(config, engine, config.systems[name], clock))
    translators = {usage: StripeMeters(build_stripe_client(config, source,
                                                          build_call_log(config, engine)),
                                       clock).translator
                   for usage, source in config.usage.stripe.items()}
    return UsageIntake(engine, clock, port, config.usage.sources, config.limits_for,
                       settle_s=config.usage.settle_s, translators=translators)


@dataclass(frozen=True, slots=True)
class Migrated:
    """The hub's schema before and after an upgrade; `database` hides the password."""

    database: str
    before: str | None
    after: str | None


def migrate_database(config: FinsyncConfig) -> Migrated:
    """Apply the hub's migrations up to the newest revision."""
    engine = build_engine(config)
    try:
        before = current_revision(engine)
        _upgrade_hub(engine)
        after = current_revision(engine)
    finally:
        engine.dispose()
    database = make_url(config.database_url).render_as_string(hide_password=True)
    return Migrated(database, before, after)


def set_up_tryton_books(url: str, database: str, user: str, password: str,
                        companies: Sequence[str], currency: str,
                        years: tuple[int, ...]) -> list[BootstrapReport]:
    """Create in Tryton what finsync posts to, for each company, if missing; one report per
    company, in order."""
    with TrytonClient(url, database, user, password) as client:
        return bootstrap_tryton(client, [BookSpec(name, currency, years) for name in companies])


# -- the CPQ body, for the demo (which plays CPQ) ---------------------------------------
def cpq_body(document: CommercialContract | CustomerAccount, occurred_at: datetime) -> bytes:
    """finsync's CPQ JSON carrying a contract version or a customer, as a CPQ source sends
    it (`connectors.cpq.document`)."""
    return cpq_document.encode(document, occurred_at)


# -- the transport: intake nodes and archivers (DESIGN §8) -------------------------------
class TransportNotConfiguredError(ConfigError):
    code = "transport_not_configured"


def nats_settings(config: FinsyncConfig, role: str, *,
                  refusal: type[ConfigError] = TransportNotConfiguredError) -> TransportSettings:
    """The `[transport]` settings of a process in `role` that needs NATS JetStream;
    `refusal` when the configuration keeps the in-process transport (`finsync cluster
    status` answers its `config_error` of old)."""
    settings = config.transport.to_settings()
    if settings.kind != "nats":
        raise refusal(
            f"{role} needs NATS JetStream: set [transport] kind = \"nats\" and its servers "
            f"in the configuration (it says kind = {settings.kind!r}: one process does all "
            "the work)")
    return settings


def build_raw_publisher(config: FinsyncConfig) -> RawPublisher:
    """An intake node's publisher: connected to the `[transport]` cluster, whose streams
    it makes sure of (idempotent)."""
    settings = nats_settings(config, "an intake node (serve --role intake)")
    # Here, not at the top: nats-py loads only in a process that speaks NATS.
    from finsync.streaming.client import JetStream
    from finsync.streaming.raw_publisher import RawPublisher
    from finsync.streaming.setup import ensure_streams

    js = JetStream(settings, f"finsync-intake-{socket.gethostname()}-{os.getpid()}")
    try:
        ensure_streams(js, settings)
    except BaseException:
        js.close()
        raise
    return RawPublisher(js, settings)


def build_archiver(config: FinsyncConfig, hub: Hub, js: JetStream) -> Archiver:
    """The archiver loop of a worker: the raw stream into `hub`'s raw event log."""
    settings = nats_settings(config, "the archiver")
    from finsync.streaming.archiver import Archiver

    return Archiver(hub.engine, hub.mappers, js, settings, hub.clock)


# -- the partitioned worker (`finsync worker`, DESIGN §8) ---------------------------------
def worker_name() -> str:
    """A worker's default name: unique per process on this machine and across machines."""
    return f"{socket.gethostname()}-{os.getpid()}"


def _processed_directly(hub: Hub) -> Callable[[Callable[[], None]], int]:
    """Raw events that reach the database without the transport (signed webhooks, the
    embedded systems' outboxes, which it pumps first), accepted by the hub's own processor:
    a worker's duty."""
    def step(_progressed: Callable[[], None]) -> int:
        return hub.pump() + hub.processor.process_batch()["raw"]
    return step


@dataclass(frozen=True, slots=True)
class WorkerStack:
    """What a worker works with: its hub, and the finance stack of its `daily` duty (None:
    it runs without that duty, and `without_daily` says why)."""

    hub: Hub
    finance: Finance | None
    without_daily: str | None

    def dispose(self) -> None:
        if self.finance is not None:
            self.finance.dispose()
        else:
            self.hub.engine.dispose()


DAILY_SWITCHED_OFF = ("switched off (finsync worker --no-daily or FINSYNC_DAILY=off): run "
                      "finsync reconcile daily")


def build_worker_stack(config: FinsyncConfig, *, daily: bool = True) -> WorkerStack:
    """The hub of a worker, built as `serve` builds it (`build_finance`, sharing its hub and
    engine) so that it can run the daily duty; a configuration without a system finance
    needs (no revenue engine, say) gives the hub alone, and why. Any other configuration
    error refuses the worker, as it refuses `serve`."""
    engine = build_engine(config)
    try:
        if not daily:
            return WorkerStack(build_hub(config, engine=engine), None, DAILY_SWITCHED_OFF)
        try:
            finance = build_finance(config, engine=engine)
        except SystemMissingError as exc:  # the hub alone still runs the partitions
            return WorkerStack(build_hub(config, engine=engine), None,
                               f"the configuration builds no finance stack ({exc})")
        return WorkerStack(finance.hub, finance, None)
    except BaseException:
        engine.dispose()
        raise


DAILY_INTERVAL_S = 1.0  # `serve`'s pipeline interval, which paces its daily job and retries


def build_worker(config: FinsyncConfig, stack: WorkerStack, name: str,
                 partitions: str | None) -> tuple[WorkerNode, JetStream]:
    """A `finsync worker`'s threads on `[transport] kind = "nats"` (else
    `TransportNotConfiguredError`): the partitions named by `partitions` (`0-3,7`; None:
    an automatic share), their deliveries, the archiver, the events-out relay, and the
    duties one worker of the cluster does at a time (what `serve`'s pipeline does beside
    its batches: raw events stored straight in the database, usage totals; with the
    stack's finance, the daily job and the retry of invoices held for tax). The caller
    closes the connection once the worker is stopped."""
    settings = nats_settings(config, "finsync worker")
    explicit = None if partitions is None else parse_partitions(partitions, settings.partitions)
    # Here, not at the top: nats-py loads only in a process that speaks NATS.
    from finsync.streaming.client import JetStream
    from finsync.streaming.setup import ensure_streams
    from finsync.streaming.singleton import DAILY, DUTIES
    from finsync.streaming.stranded import refuse_if_stranded
    from finsync.streaming.worker import WorkerNode

    hub = stack.hub
    duties = {DUTIES: [_processed_directly(hub), build_usage(config, hub.engine, hub.clock).step]}
    if stack.finance is not None:
        duties[DAILY] = build_daily_duty(stack.finance)
    declined = {} if stack.without_daily is None else {DAILY: stack.without_daily}
    js = JetStream(settings, f"finsync-worker-{name}")
    try:
        ensure_streams(js, settings)
        refuse_if_stranded(js, settings)
        node = WorkerNode(hub, js, settings, name, explicit,
                          archive=build_archiver(config, hub, js).step,
                          relay=build_events_out(config, hub.engine, js, name),
                          duties=duties, duty_interval_s={DAILY: DAILY_INTERVAL_S},
                          declined=declined)
    except BaseException:
        js.close()
        raise
    return node, js
