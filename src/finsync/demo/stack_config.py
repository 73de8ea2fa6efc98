"""What the real-stack demo is pointed at, and the `finsync.toml` of a Stripe-only company
it writes for them: Stripe is the billing system of record, Tryton the ERP, the embedded
revenue engine recognises, and the hub keeps its store where `database_url` says
(PostgreSQL in the issue's stack).

Rules:
- Secrets are never written: the configuration names the environment variables that hold
  the Stripe key and the Tryton password, as every finsync.toml does; a hub URL with a
  password is read from `FINSYNC_DATABASE_URL` only.
- Stripe's events come through the catch-up poller (`poll_on_run`), from the demo's start:
  a test account's earlier events are not the demo's. Webhooks are not needed (a test
  account cannot reach a laptop without `stripe listen`), and `serve` of a kept folder
  takes them as usual.
- Stripe is billing's books (`[systems.billing] connector = "stripe"`): reconciliation reads
  the connector's local mirror of the account, kept by the poller.
- Each Stripe product the demo creates has the id of a revenue catalogue product and maps to
  it (`[stripe.<source>.catalog]`); their SSPs are configured (`[[revenue.ssp]]`, the
  embedded catalogue's): there is no billing catalogue with Stripe.
"""

from __future__ import annotations

import getpass
import json
from dataclasses import dataclass
from pathlib import Path

from finsync.auth.principal import ADMIN, FINANCE_READ, PERIODS_MANAGE
from finsync.domain.events import BusinessDomain
from finsync.domain.secret import looks_secret

ENTITY = "le_us"
SOURCE = "stripe"
USAGE_SOURCE = "stripe_meters"
SIGNING_KEY = "var/audit-signing.pem"
ADMIN_PRINCIPAL = "demo.admin"
SSPS = (("prod_platform_seat", "120.00"), ("prod_premium_analytics", "24000.00"),
        ("prod_usage_overage", "0.002"))
ROUTES = {"invoice.issued": ["ledger", "revrec"], "credit_memo.issued": ["ledger", "revrec"],
          "revenue.journal_recorded": ["ledger"], "payment.applied": ["ledger"],
          "refund.issued": ["ledger"], "contract.created": ["revrec"],
          "contract.amended": ["revrec"], "contract.renewed": ["revrec"],
          "contract.cancelled": ["revrec"]}


@dataclass(frozen=True, slots=True)
class StackSettings:
    """The running systems: Stripe (or an emulator) at `stripe_url`, Tryton at
    `tryton_url` serving `tryton_database`, and the hub's store at `database_url`."""

    stripe_url: str
    tryton_url: str
    tryton_database: str
    database_url: str
    stripe_key_env: str = "STRIPE_API_KEY"
    tryton_user: str = "admin"
    tryton_password_env: str = "FINSYNC_TRYTON_PASSWORD"
    tryton_company: str = "Acme Analytics Inc."


def config_text(settings: StackSettings, years: tuple[int, ...], *, meters: bool) -> str:
    """The demo's `finsync.toml` (`meters`: the account has Stripe Billing meters, so its
    meter events are taken as usage too)."""
    q = json.dumps
    ownership = {d.value: SOURCE for d in BusinessDomain} | {
        "tax": "tax", "ledger": "ledger", "revenue": "revrec"}
    hub = (f"database_url = {q(settings.database_url)}\n" if not has_password(settings)
           else "# database_url: from FINSYNC_DATABASE_URL (a URL with a password)\n")
    lines = [f"[hub]\n{hub}",
             "\n[ownership]\n", *(f"{k} = {q(v)}\n" for k, v in ownership.items()),
             f'\n[sources]\n{SOURCE} = "stripe"\nrevrec = "canonical"\n',
             f"\n[stripe.{SOURCE}]\nlegal_entity = {q(ENTITY)}\n"
             f"base_url = {q(settings.stripe_url)}\napi_key_env = {q(settings.stripe_key_env)}\n"
             "poll_on_run = true\ntimeout_s = 30\n",
             f"\n[stripe.{SOURCE}.catalog.products]\n",
             *(f"{q(product)} = {q(product)}\n" for product, _ in SSPS),
             f'\n[[stripe.{SOURCE}.webhook_secrets]]\nenv = "STRIPE_WEBHOOK_SECRET"'
             "  # read by `serve` only: the demo polls\n"]
    if meters:
        lines.append(f"\n[usage]\nsources = [{q(USAGE_SOURCE)}]\nsettle_s = 0\n"
                     f"\n[usage.stripe]\n{USAGE_SOURCE} = {q(SOURCE)}\n")
    lines.append(
        f'\n[systems.ledger]\nrole = "ledger"\nconnector = "tryton"\nurl = {q(settings.tryton_url)}'
        f"\ndatabase = {q(settings.tryton_database)}\nuser = {q(settings.tryton_user)}\n"
        f"password_env = {q(settings.tryton_password_env)}\nbatch_size = 25\n"
        f"\n[systems.ledger.companies]\n{ENTITY} = {q(settings.tryton_company)}\n"
        '\n[systems.revrec]\nrole = "revenue"\nconnector = "embedded"\n'
        "\n# Stripe is billing's books: reconciliation reads its local mirror.\n"
        f'[systems.billing]\nrole = "billing"\nconnector = "stripe"\nsource = {q(SOURCE)}\n')
    lines.append("\n[routes]\n")
    lines.extend(f"{q(t)} = {q(targets)}\n" for t, targets in ROUTES.items())
    lines.append(f"\n[[ledger.entities]]\nid = {q(ENTITY)}\nname = {q(settings.tryton_company)}\n"
                 f'functional_currency = "USD"\nfiscal_years = {list(years)}\n')
    for product, amount in SSPS:
        lines.append(f"\n[[revenue.ssp]]\nproduct_id = {q(product)}\namount = {q(amount)}\n"
                     'currency = "USD"\neffective_from = 2020-01-01\n')
    lines.append(f"\n[auth.principals.{q(ADMIN_PRINCIPAL)}]\n"
                 f"scopes = {q([ADMIN, FINANCE_READ, PERIODS_MANAGE])}\n"
                 f"\n[auth.os_users]\n{q(getpass.getuser())} = {q(ADMIN_PRINCIPAL)}\n"
                 f"\n[audit]\nsigning_key_file = {q(SIGNING_KEY)}\n")
    return "".join(lines)


def has_password(settings: StackSettings) -> bool:
    """Whether the hub's URL holds a password (never written: read from the environment)."""
    return looks_secret(settings.database_url)


def write_config(workdir: Path, text: str) -> Path:
    path = workdir / "finsync.toml"
    path.write_text(text)
    return path
