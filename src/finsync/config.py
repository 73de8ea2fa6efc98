"""Settings: `finsync.toml`, read and checked at start-up (pydantic at the edge).

A configuration that names an unknown domain, event type, system or connector, or routes an
event type to a system that cannot take it, is refused with a message that says which.
"""

from __future__ import annotations

import logging
import os
import re
import tomllib
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from finsync.auth.principal import check_scope, normalise
from finsync.domain.errors import DomainError, FinsyncError
from finsync.domain.events import CATALOGUE, BusinessDomain, EventType
from finsync.domain.limits import ID_MAX_CHARS, InputLimits
from finsync.domain.money import exponent
from finsync.domain.secret import Secret, looks_secret
from finsync.hub.settings import DeliveryPolicy, HubSettings
from finsync.streaming.settings import NAMESPACE, PARTITIONS_MAX, REPLICAS_MAX, TransportSettings

DEFAULT_CONFIG = Path(__file__).with_name("default_config.toml")


class ConfigError(FinsyncError):
    code = "config_error"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HubSection(_Strict):
    database_url: str = "sqlite:///var/finsync.db"
    gap_wait_s: float = Field(300, gt=0)
    intake_batch_size: int = Field(500, ge=1, le=10_000)


class DeliverySection(_Strict):
    attempts_max: int = Field(8, ge=1, le=100)
    backoff_base_s: float = Field(0.5, gt=0)
    backoff_cap_s: float = Field(300, gt=0)
    lease_s: float = Field(30, gt=0)
    batch_size: int = Field(50, ge=1, le=1000)
    lease_expiries_max: int = Field(3, ge=1, le=100)


class SystemSection(_Strict):
    role: Literal["ledger", "revenue", "billing", "tax"]
    connector: Literal["filedrop", "embedded", "tryton", "stripe", "http"]
    directory: str = "var/exports"  # filedrop
    source: str | None = None  # stripe billing: the Stripe intake source (`[stripe.<source>]`)
    catalog: str | None = None  # embedded billing: catalogue TOML (the shipped one if unset)
    # The ERP's call budget, shared by every worker process (the hub keeps it in its
    # database; embedded ledgers enforce it too): calls per minute, calls in flight at
    # once (unset: each legal entity's lane one call at a time), calls per UTC day.
    calls_per_minute: int | None = Field(None, ge=1)
    concurrency: int | None = Field(None, ge=1)
    daily_cap: int | None = Field(None, ge=1)
    batch_size: int | None = Field(None, ge=1, le=1000)  # ledger: documents per call
    posting: Literal["detail", "daily_summary"] = "detail"  # ledger: see docs/erp-buffer.md
    # tryton: the server, its database, a user whose password is in the environment variable
    # `password_env` or the file `password_file` (never in this file), the company of each
    # legal entity, and the account code of each posting role (finsync's defaults match
    # `finsync tryton bootstrap`).
    url: str | None = None
    database: str | None = None
    user: str = "admin"
    password_env: str = "FINSYNC_TRYTON_PASSWORD"
    password_file: str | None = None  # a secret file; when given, read instead of the env
    companies: dict[str, str] = Field(default_factory=dict)
    accounts: dict[str, str] = Field(default_factory=dict)
    max_batch: int = Field(25, ge=1, le=500)
    # http tax engine (`finsync tax serve`): its `url`, the environment variable holding
    # its bearer token, and how long a call may take.
    token_env: str = "FINSYNC_TAX_TOKEN"
    timeout_s: float = Field(10, gt=0, le=300)


class TaxSection(_Strict):
    """The embedded tax engine's master data: a TOML file (docs/tax/engine.md) loaded into
    its tables at start-up; the shipped default_tax.toml when unset."""

    file: str | None = None


class CpqSection(_Strict):
    """The commercial layer (docs/cpq.md): `catalog` names the catalogue map TOML (CPQ
    product -> billing product and price, SSP entry, ERP revenue account); the shipped
    default_cpq_catalog.toml when unset."""

    catalog: str | None = None


class LedgerEntitySection(_Strict):
    id: str
    name: str
    functional_currency: str
    fiscal_years: list[int] = Field(default_factory=list)
    chart: str | None = None  # a chart-of-accounts TOML file; the default SaaS chart if unset
    recognised_on_invoice: list[str] = Field(default_factory=list)
    revenue_by_product: dict[str, str] = Field(default_factory=dict)


class FxRateSection(_Strict):
    base: str
    quote: str
    effective: date
    rate: Decimal = Field(gt=0)


class SspSection(_Strict):
    """A standalone selling price, effective `[effective_from, effective_to)`."""

    product_id: str
    amount: Decimal
    currency: str
    effective_from: date
    effective_to: date | None = None


class RevenueSection(_Strict):
    """Inputs of the embedded revenue engine (SSPs belong to the catalog's owner; until the
    billing catalog carries them they are configured here)."""

    ssp: list[SspSection] = Field(default_factory=list)
    # The GL accounts of the revenue journals by role (revenue, deferred_revenue,
    # contract_asset, unbilled_receivable, contra_revenue, refund_liability); empty: the
    # engine's defaults. `entity_accounts.<entity>` overrides roles for one legal entity.
    accounts: dict[str, str] = Field(default_factory=dict)
    entity_accounts: dict[str, dict[str, str]] = Field(default_factory=dict)


class TriageSection(_Strict):
    """Segregation of duties: a correction (re-route, resolve, ignore) whose money at stake
    is above the threshold of its currency needs a second person's approval."""

    approval_threshold: Decimal = Decimal("1000.00")
    thresholds: dict[str, Decimal] = Field(default_factory=dict)  # per ISO 4217 currency


class CallsSection(_Strict):
    """The external-call log: how long its entries are kept (the daily job purges older
    ones). Seven years by default, the span SOX evidence is usually kept for."""

    retention_days: int = Field(default=2557, ge=1, le=36500)


class PrincipalSection(_Strict):
    """A principal the configuration names: the scopes it holds when it acts through the
    CLI as a mapped OS user (`[auth.os_users]`). Tokens carry their own scopes."""

    scopes: list[str] = Field(default_factory=list)


class AuthSection(_Strict):
    """Who the CLI acts as: `os_users` maps an OS login to a principal under `principals`
    (`"*"` maps every login not named; use it only where one person owns the machine)."""

    principals: dict[str, PrincipalSection] = Field(default_factory=dict)
    os_users: dict[str, str] = Field(default_factory=dict)


class AuditSection(_Strict):
    """The key that signs the audit trail's checkpoints: the file or the environment
    variable that holds it (the key itself is never written here), and the public keys
    (hex) that verification trusts besides the signer's own: earlier keys after a rotation,
    or the only key of a host that verifies without signing."""

    signing_key_file: str | None = None
    signing_key_env: str | None = None
    public_keys: list[str] = Field(default_factory=list)


class ControlsSection(_Strict):
    """Two-person controls: how long a request (a period reopen, a configuration change)
    waits for its second principal before it expires."""

    pending_ttl_h: float = Field(72.0, gt=0, le=24 * 90)


class ConsoleSection(_Strict):
    """The web console's sessions (`finsync serve`, at `/`): a session ends after
    `idle_timeout_min` without a request, and `session_max_h` after log-in at the latest."""

    idle_timeout_min: float = Field(30.0, gt=0, le=24 * 60)
    session_max_h: float = Field(12.0, gt=0, le=24 * 7)


class TransportSection(_Strict):
    """How the work travels (DESIGN §8, docs/scaling.md): `inprocess` (the default) in one
    process on the database; `nats` over a NATS JetStream cluster, with stateless intake
    nodes, an archiver and partitioned workers (`finsync serve --role intake`, `finsync
    worker`). The other keys matter only with `nats`."""

    kind: Literal["inprocess", "nats"] = "inprocess"
    servers: list[str] = Field(default_factory=lambda: ["nats://127.0.0.1:4222"], min_length=1)
    namespace: str = Field("finsync", pattern=f"^{NAMESPACE.pattern}$")
    partitions: int = Field(16, ge=1, le=PARTITIONS_MAX)
    replicas: int = Field(3, ge=1, le=REPLICAS_MAX)
    duplicate_window_s: float = Field(3600.0, gt=0)
    retention_s: float = Field(7 * 86400.0, gt=0)
    ack_wait_s: float = Field(30.0, gt=0, le=3600)
    lease_ttl_s: float = Field(10.0, gt=0, le=3600)
    max_deliver: int = Field(-1, ge=-1)

    @field_validator("servers", mode="after")
    @classmethod
    def _nats_urls(cls, servers: list[str]) -> list[str]:
        for url in servers:
            if _SERVER_URL.fullmatch(url) is None:
                raise ValueError(f"{url!r} is not a nats:// or tls:// URL with a host")
        return servers

    @model_validator(mode="after")
    def _window_within_retention(self) -> TransportSection:
        if self.max_deliver == 0:
            raise ValueError("max_deliver: -1 (until acked) or at least 1")
        if self.duplicate_window_s > self.retention_s:
            raise ValueError(f"duplicate_window_s ({self.duplicate_window_s}) cannot exceed "
                             f"retention_s ({self.retention_s})")
        return self

    def to_settings(self) -> TransportSettings:
        values = self.model_dump()
        values["servers"] = tuple(self.servers)
        return TransportSettings(**values)


# A NATS server URL: the scheme, a host (a name, IPv4, or [IPv6]) and an optional port;
# nothing else (no credentials in the file: they would be secrets in clear).
_SERVER_URL = re.compile(r"(nats|tls)://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?")


class LedgerSection(_Strict):
    """Books of the embedded ledger, created at start-up when missing."""

    entities: list[LedgerEntitySection] = Field(default_factory=list)
    rates: list[FxRateSection] = Field(default_factory=list)


class LimitsSection(_Strict):
    """Limits on one intake source's input (`[limits.<source>]`, or `[limits.default]` for
    every source that names none); see `finsync.domain.limits`."""

    body_max_bytes: int = Field(1 << 20, ge=1024, le=1 << 30)
    json_depth_max: int = Field(32, ge=2, le=200)  # stored JSON is read at depth 200
    json_items_max: int = Field(20_000, ge=1, le=10_000_000)
    id_max_chars: int = Field(ID_MAX_CHARS, ge=8, le=ID_MAX_CHARS)
    text_max_chars: int = Field(4_000, ge=16, le=1_000_000)
    amount_max: Decimal = Field(Decimal("1000000000000"), gt=0)
    years_back: int = Field(30, ge=0, le=200)
    years_ahead: int = Field(30, ge=0, le=200)
    requests_per_s: float = Field(100.0, gt=0)
    burst: int = Field(200, ge=1)

    def to_limits(self) -> InputLimits:
        return InputLimits(**self.model_dump())


class UsageSection(_Strict):
    """Usage at volume (`finsync.hub.usage`): the metering sources whose meter events are
    taken at `/v1/usage/<source>/events` and by `finsync usage load`, and how long after a
    day ends its meter events are totalled for billing. A source named in `stripe` takes
    Stripe's meter events (`billing.meter_event`) of that Stripe source's account, each
    read through the account's meters and subscription items (docs/stripe.md)."""

    sources: list[str] = Field(default_factory=list)
    settle_s: float = Field(3600.0, ge=0)
    stripe: dict[str, str] = Field(default_factory=dict)  # usage source -> Stripe source


class SecretSection(_Strict):
    """Where one secret is: an environment variable (`env`) or a secret file (`file`,
    relative to the configuration's folder), never the value itself. A webhook secret may
    say until when it is valid (`not_after`, exclusive): while an old and a new one are
    both valid, a request signed with either is accepted (rotation with an overlap)."""

    env: str | None = None
    file: str | None = None
    not_after: datetime | None = None

    @model_validator(mode="after")
    def _one_place(self) -> SecretSection:
        if (self.env is None) == (self.file is None):
            raise ValueError("name exactly one of env or file")
        if self.not_after is not None and self.not_after.utcoffset() is None:
            raise ValueError("not_after needs a time zone (e.g. 2026-12-31T00:00:00Z)")
        return self


class StripeCatalogSection(_Strict):
    """Stripe prices and products -> products of the revenue catalogue
    (`[stripe.<source>.catalog]`, see `connectors.stripe.catalog`): a price's own entry wins
    over its product's. Once anything is mapped, a price neither maps is refused as a
    `master_data_mismatch`; with nothing mapped, Stripe's product ids are the products."""

    prices: dict[str, str] = Field(default_factory=dict)
    products: dict[str, str] = Field(default_factory=dict)
    # Billing's price ids (the commercial layer's orders) -> Stripe price ids, for the
    # subscription platform (`connectors.stripe.orders`); an id not named is Stripe's own.
    billing_prices: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _named(self) -> StripeCatalogSection:
        for table, mapped in (("prices", self.prices), ("products", self.products),
                              ("billing_prices", self.billing_prices)):
            for stripe_id, product in mapped.items():
                if not stripe_id or not product:
                    raise ValueError(f"{table}: {stripe_id!r} = {product!r} needs both ids")
        return self


class StripeSection(_Strict):
    """One Stripe account as an intake source (`[stripe.<source>]`). Secrets are never in
    the file: it names the environment variables or secret files that hold them. Events of
    the account book into `legal_entity`; events of Connect accounts (their `account`) into
    the entity `connected_accounts` names for each."""

    legal_entity: str
    connected_accounts: dict[str, str] = Field(default_factory=dict)
    catalog: StripeCatalogSection = StripeCatalogSection()
    api_key_env: str = "STRIPE_API_KEY"
    api_key_file: str | None = None  # a secret file; when given, read instead of the env
    # Several while a webhook secret is rotated: each valid until its `not_after`.
    webhook_secrets: list[SecretSection] = Field(
        default_factory=lambda: [SecretSection(env="STRIPE_WEBHOOK_SECRET")], min_length=1)
    base_url: str = "https://api.stripe.com"
    api_version: str | None = None
    timeout_s: float = Field(10, gt=0)
    tolerance_s: int = Field(300, ge=1)
    default_country: str = "US"
    default_currency: str = "USD"
    fallback_product: str = "stripe_unpriced"
    poll_on_run: bool = True  # poll /v1/events before every pipeline run
    # The subscription item field an order names its Stripe price with: "price", or "plan"
    # for an account (or an emulator such as localstripe) that sells Plans only.
    price_parameter: Literal["price", "plan"] = "price"
    # Invoices issued before this instant (their credit notes, customer events) map without
    # Stripe Tax's breakdown, as finsync mapped them before it had one: set it to the
    # upgrade's time on a database that already holds Stripe documents (docs/stripe.md).
    tax_breakdown_from: datetime | None = None

    @model_validator(mode="after")
    def _aware(self) -> StripeSection:
        since = self.tax_breakdown_from
        if since is not None and since.utcoffset() is None:
            raise ValueError("tax_breakdown_from needs a time zone (e.g. "
                             "2026-12-07T00:00:00Z)")
        return self


class HubSpotSection(_Strict):
    """One HubSpot account as a CRM/CPQ source (`[hubspot.<source>]`, docs/cpq/hubspot.md).
    `webhook_url` is the target URL exactly as configured in the HubSpot app: HubSpot signs
    it. Secrets are never in the file: the access token (a private app's, or OAuth) and the
    app's client secrets (several while one is rotated, each until its `not_after`) are in
    the environment variables or secret files named here."""

    legal_entity: str
    webhook_url: str
    base_url: str = "https://api.hubapi.com"
    access_token_env: str = "HUBSPOT_ACCESS_TOKEN"
    access_token_file: str | None = None
    client_secrets: list[SecretSection] = Field(
        default_factory=lambda: [SecretSection(env="HUBSPOT_CLIENT_SECRET")], min_length=1)
    tolerance_s: int = Field(300, ge=1, le=3600)
    timeout_s: float = Field(10, gt=0, le=300)
    default_currency: str = "USD"
    # The deal stages (internal ids, per pipeline) that mean CPQ approved the contract.
    approved_stages: list[str] = Field(default_factory=lambda: ["closedwon"], min_length=1)
    vat_property: str = "vat_number"  # the company property holding the VAT id
    kind_property: str | None = None  # a deal property: amendment, renewal, cancellation
    term_start_property: str = "contract_start_date"
    term_end_property: str = "contract_end_date"
    proration: Literal["invoice_now", "next_invoice", "none"] = "invoice_now"
    fetch_on_run: bool = True  # read the objects webhooks named before every pipeline run
    batch_max: int = Field(50, ge=1, le=1000)  # objects read per run



class CpqSourceSection(_Strict):
    """A CPQ intake source (`[cpq_sources.<source>]`) of kind "cpq" (finsync's CPQ JSON,
    signed) or "salesforce_cpq" (Salesforce CPQ's change events and platform events, sent
    by a relay that signs them the same way): see docs/cpq/sources.md. Requests are signed
    with HMAC-SHA256 (`Finsync-Signature`) by any of `signing_secrets`, each valid until its
    `not_after` (rotation with an overlap); the secrets are never in the file. A source
    without signing secrets takes file drops only: its webhook refuses every request.
    `legal_entity` is the entity of documents that name none (required for Salesforce);
    `currency`, `billing_frequency` and `proration` are what a Salesforce quote that says
    none gets. `lines_max` and `ramp_steps_max` bound a contract version."""

    legal_entity: str | None = None
    # None: the source takes file drops only, and its webhook refuses every request.
    signing_secrets: list[SecretSection] = Field(default_factory=list, max_length=8)
    tolerance_s: int = Field(300, ge=1, le=3600)
    currency: str = "USD"
    billing_frequency: Literal["monthly", "quarterly", "annual"] = "monthly"
    proration: Literal["invoice_now", "next_invoice", "none"] = "invoice_now"
    lines_max: int = Field(1_000, ge=1, le=100_000)
    ramp_steps_max: int = Field(120, ge=1, le=10_000)


CPQ_KINDS = ("cpq", "salesforce_cpq")


COMMERCIAL_OWNER = "cpq"


class FinsyncConfig(_Strict):
    hub: HubSection = HubSection()
    delivery: DeliverySection = DeliverySection()
    ownership: dict[BusinessDomain, str]
    sources: dict[str, Literal["canonical", "stripe", "hubspot", "cpq", "salesforce_cpq"]] = {
        "canonical": "canonical"}
    stripe: dict[str, StripeSection] = {}  # intake source of kind "stripe" -> its account
    hubspot: dict[str, HubSpotSection] = {}  # intake source of kind "hubspot" -> its account
    cpq_sources: dict[str, CpqSourceSection] = {}  # source of a CPQ kind -> its settings
    pumps: dict[str, str] = {}  # intake source -> the embedded system whose outbox it drains
    systems: dict[str, SystemSection] = {}
    routes: dict[str, list[str]] = {}
    ledger: LedgerSection = LedgerSection()
    revenue: RevenueSection = RevenueSection()
    tax: TaxSection = TaxSection()
    cpq: CpqSection = CpqSection()
    triage: TriageSection = TriageSection()
    limits: dict[str, LimitsSection] = {}  # intake source (or "default") -> its limits
    usage: UsageSection = UsageSection()
    auth: AuthSection = AuthSection()
    audit: AuditSection = AuditSection()
    calls: CallsSection = CallsSection()
    controls: ControlsSection = ControlsSection()
    console: ConsoleSection = ConsoleSection()
    transport: TransportSection = TransportSection()
    base_dir: Path = Path(".")

    @field_validator("ownership", mode="after")
    @classmethod
    def _commercial_owner(cls, value: dict[BusinessDomain, str]) -> dict[BusinessDomain, str]:
        # The commercial domain came after configurations were written: CPQ owns it
        # unless a configuration says otherwise.
        return {BusinessDomain.COMMERCIAL: COMMERCIAL_OWNER, **value}

    def limits_for(self, source: str) -> InputLimits:
        """The limits of one intake source: its own section, else `[limits.default]`."""
        section = self.limits.get(source) or self.limits.get("default") or LimitsSection()
        return section.to_limits()

    def secret(self, what: str, env: str | None, file: str | None) -> Secret:
        """The secret in the file `file` (when given) else in the environment variable
        `env`; `what` names the setting in errors, which never show the value."""
        return read_secret(what, env, None if file is None else self.resolve(file))

    def resolve(self, relative: str) -> Path:
        path = Path(relative)
        return path if path.is_absolute() else self.base_dir / path

    @property
    def database_url(self) -> str:
        url = os.environ.get("FINSYNC_DATABASE_URL") or self.hub.database_url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
            return prefix + str(self.resolve(url[len(prefix):]).resolve())
        return url

    def hub_settings(self) -> HubSettings:
        """The hub's settings. A route never sends an event to the system that owns its
        domain: that system is where it came from (`customer.upserted` goes to billing
        only when billing does not own the customer master)."""
        return HubSettings(
            ownership=dict(self.ownership),
            routes={EventType(t): self._routed(EventType(t), targets)
                    for t, targets in self.routes.items()},
            delivery=DeliveryPolicy(**self.delivery.model_dump()),
            gap_wait_s=self.hub.gap_wait_s,
            intake_batch_size=self.hub.intake_batch_size,
        )


    def _routed(self, event_type: EventType, targets: list[str]) -> tuple[str, ...]:
        owner = self.ownership.get(CATALOGUE[event_type].domain)
        return tuple(target for target in targets if target != owner)


def _check_pumps(config: FinsyncConfig) -> None:
    for source, system in config.pumps.items():
        if source not in config.sources:
            raise ConfigError(f"[pumps] {source!r} is not an intake source under [sources]")
        section = config.systems.get(system)
        if section is None or (section.role, section.connector) != ("billing", "embedded"):
            raise ConfigError(f"[pumps] {source} drains {system!r}, which is not an embedded "
                              "billing system under [systems]")


def _check_stripe(config: FinsyncConfig) -> None:
    for source, kind in config.sources.items():
        if kind == "stripe" and source not in config.stripe:
            raise ConfigError(f"[sources] {source} is a Stripe source without [stripe.{source}]")
    for source, section in config.stripe.items():
        if config.sources.get(source) != "stripe":
            raise ConfigError(f"[stripe.{source}] is not a source of kind \"stripe\" under "
                              "[sources]")
        for account, entity in section.connected_accounts.items():
            if not account.startswith("acct_") or not entity:
                raise ConfigError(f"[stripe.{source}.connected_accounts] {account!r} = "
                                  f"{entity!r}: a Connect account id (acct_…) and a legal "
                                  "entity")
    for name, system in config.systems.items():
        if system.connector != "stripe":
            continue
        if system.role != "billing":
            raise ConfigError(f"[systems.{name}]: the stripe connector plays the billing role "
                              f"only, not {system.role}")
        if system.source not in config.stripe:
            raise ConfigError(f"[systems.{name}] source = {system.source!r} names no Stripe "
                              f"source; configured: {', '.join(sorted(config.stripe)) or 'none'}")
    _check_stripe_usage(config)


def _check_cpq(config: FinsyncConfig) -> None:
    for source, kind in config.sources.items():
        if kind in CPQ_KINDS and source not in config.cpq_sources:
            raise ConfigError(f"[sources] {source} is a {kind} source without "
                              f"[cpq_sources.{source}]")
    for source, section in config.cpq_sources.items():
        named = config.sources.get(source)
        if named not in CPQ_KINDS:
            raise ConfigError(f"[cpq_sources.{source}] is not a source of kind \"cpq\" or "
                              "\"salesforce_cpq\" under [sources]")
        if named == "salesforce_cpq" and not section.legal_entity:
            raise ConfigError(f"[cpq_sources.{source}] needs legal_entity: a Salesforce "
                              "quote names none")
        try:
            exponent(section.currency)
        except DomainError as exc:
            raise ConfigError(f"[cpq_sources.{source}] currency: {exc}") from None


def _check_stripe_usage(config: FinsyncConfig) -> None:
    for usage, source in config.usage.stripe.items():
        if usage not in config.usage.sources:
            raise ConfigError(f"[usage.stripe] {usage} is not a usage source under [usage] "
                              "sources")
        if source not in config.stripe:
            raise ConfigError(f"[usage.stripe] {usage} reads meters of {source!r}, which is "
                              "not a Stripe source under [stripe]")


def _check_hubspot(config: FinsyncConfig) -> None:
    for source, kind in config.sources.items():
        if kind == "hubspot" and source not in config.hubspot:
            raise ConfigError(f"[sources] {source} is a HubSpot source without "
                              f"[hubspot.{source}]")
    for source, section in config.hubspot.items():
        if config.sources.get(source) != "hubspot":
            raise ConfigError(f"[hubspot.{source}] is not a source of kind \"hubspot\" under "
                              "[sources]")
        if not section.webhook_url.startswith(("https://", "http://")):
            raise ConfigError(f"[hubspot.{source}] webhook_url must be the http(s) URL "
                              "configured in the HubSpot app")
        try:
            exponent(section.default_currency.upper())
        except DomainError as exc:
            raise ConfigError(f"[hubspot.{source}] default_currency: {exc}") from None


PREVIEWING = ("embedded", "tryton")  # ledger connectors that preview their journals


def _check_posting(config: FinsyncConfig) -> None:
    for name, system in config.systems.items():
        if system.posting == "daily_summary" and (system.role != "ledger" or
                                                  system.connector not in PREVIEWING):
            raise ConfigError(f"[systems.{name}] posting = \"daily_summary\" needs a ledger "
                              f"that previews its journals (connector one of {PREVIEWING})")


def _check_auth(auth: AuthSection) -> None:
    for name, principal in auth.principals.items():
        try:
            if normalise(name) != name:
                raise ConfigError(f"[auth.principals] {name!r} is not normalised: write "
                                  f"{normalise(name)!r}")
            for scope in principal.scopes:
                check_scope(scope)
        except DomainError as exc:
            raise ConfigError(f"[auth.principals.{name}]: {exc}") from None
    for login, name in auth.os_users.items():
        if name not in auth.principals:
            raise ConfigError(f"[auth.os_users] {login} acts as {name!r}, which is not under "
                              "[auth.principals]")


def _check_audit(audit: AuditSection) -> None:
    if audit.signing_key_file and audit.signing_key_env:
        raise ConfigError("[audit] names both signing_key_file and signing_key_env: keep one")


def _check(config: FinsyncConfig) -> None:
    _check_pumps(config)
    _check_audit(config.audit)
    _check_auth(config.auth)
    named = {"default", *config.sources, *config.usage.sources}
    for name in config.limits:
        if name not in named:
            raise ConfigError(f"[limits.{name}] is neither \"default\" nor an intake source "
                              "under [sources] or [usage]")
    _check_stripe(config)
    _check_hubspot(config)
    _check_cpq(config)
    _check_posting(config)
    missing = set(BusinessDomain) - set(config.ownership)
    if missing:
        raise ConfigError(f"[ownership] must name an owner for: {', '.join(sorted(missing))}")
    for event_type, targets in config.routes.items():
        if event_type not in set(EventType):
            raise ConfigError(f"[routes] unknown event type {event_type!r}")
        for target in targets:
            if target not in config.systems:
                raise ConfigError(f"[routes] {event_type} goes to {target!r}, "
                                  "which is not under [systems]")


def parse_config(data: dict[str, Any], base_dir: Path) -> FinsyncConfig:
    refuse_clear_secrets(data)
    try:
        config = FinsyncConfig(**data, base_dir=base_dir)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid configuration: {problems}") from None
    _check(config)
    return config


# A setting whose name says it holds a secret (`password`, `api_key`, `webhook_secret`,
# `signing_key`, ...); `<name>_env` and `<name>_file` name where the secret is instead.
_SECRET_NAME = re.compile(r"(^|_)(password|passwd|secret|api_key|apikey|token|private_key|"
                          r"signing_key|credential|credentials)$")


def refuse_clear_secrets(data: Mapping[str, Any], path: str = "") -> None:
    """Refuse a configuration that holds a secret in clear: a setting named like a secret
    with a value, or any value that looks like a credential (`domain.secret`: a Stripe key,
    a webhook secret, an API token, a private key, a URL with a password). The error names
    the setting, never its value."""
    for key, value in data.items():
        here = f"{path}.{key}" if path else str(key)
        if isinstance(value, Mapping):
            refuse_clear_secrets(value, here)
            continue
        items = value if isinstance(value, list) else [value]
        for index, item in enumerate(items):
            where = f"{here}[{index}]" if isinstance(value, list) else here
            if isinstance(item, Mapping):
                refuse_clear_secrets(item, where)
            elif isinstance(item, str) and (_SECRET_NAME.search(str(key).lower())
                                            or looks_secret(item)):
                raise ConfigError(_clear_secret_message(where))


def _clear_secret_message(where: str) -> str:
    if where == "hub.database_url":
        return ("hub.database_url holds a password: a secret is never written in "
                "finsync.toml; set the whole URL in the environment variable "
                "FINSYNC_DATABASE_URL instead")
    return (f"{where} holds a secret in clear: a secret is never written in finsync.toml; "
            "name the environment variable or the secret file that holds it (the "
            "setting's `_env` or `_file` form, see docs/security.md)")


def read_secret(what: str, env: str | None, file: Path | None) -> Secret:
    """A secret from a file (its content, without the final line break) or else from an
    environment variable; a missing or empty one is a `ConfigError` that names where it was
    looked for, never a value."""
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ConfigError(f"{what}: the secret file {file} cannot be read ({reason})"
                              ) from None
        value = text.rstrip("\r\n")
        if not value:
            raise ConfigError(f"{what}: the secret file {file} is empty")
        return Secret(value)
    from_env = os.environ.get(env) if env else None
    if not from_env:
        raise ConfigError(f"{what}: the environment variable {env} is not set")
    return Secret(from_env)


class ConfigNotFoundError(ConfigError):
    code = "config_not_found"


def env_switch(name: str) -> bool:
    """An on/off environment variable, on when unset (`FINSYNC_DAILY`: `serve` and
    `finsync worker` take the daily job unless it is `off`)."""
    mode = os.environ.get(name, "on")
    if mode not in {"on", "off"}:
        raise ConfigError(f"{name} must be on or off, not {mode!r}")
    return mode == "on"


def load_config(path: Path | None = None) -> FinsyncConfig:
    """Read the configuration named by `path`, else by `FINSYNC_CONFIG`; a named file that
    does not exist is an error (`config_not_found`), never a reason to fall back. With none
    named, `./finsync.toml`; only when that does not exist either, the built-in defaults
    rooted in the current folder, and a warning (logger `finsync.config`) says so."""
    from_env = os.environ.get("FINSYNC_CONFIG") or None
    named = path or (Path(from_env) if from_env else None)
    if named is not None and not named.is_file():
        how = "--config" if path is not None else "FINSYNC_CONFIG"
        raise ConfigNotFoundError(f"no configuration file at {named} (named by {how}); "
                                  "`finsync init` writes one")
    local = Path("finsync.toml")
    source = named or (local if local.is_file() else None)
    if source is None:
        logging.getLogger(__name__).warning(
            "no finsync.toml in %s and none named (--config, FINSYNC_CONFIG): using the "
            "built-in defaults here; `finsync init` writes them to finsync.toml",
            Path.cwd())
    text_path = source or DEFAULT_CONFIG
    try:
        data = tomllib.loads(text_path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{text_path} is not valid TOML: {exc}") from None
    base = (source.parent if source else Path.cwd()).resolve()
    return parse_config(data, base)
