"""Run the demo's year in a fresh SQLite database and gather the report finance reads.

The configuration is the shipped default (`finsync.toml` of `finsync init`) rooted in the
work folder, with no pumps (the demo plays billing's webhooks itself, to inject faults) and
an `[auth]` section for its people: each acts as the principal its login is mapped to.
After the year it reconciles, replays every event and checks that the books did not move.
"""

from __future__ import annotations

import getpass
import json
import logging
import shutil
import tempfile
import tomllib
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from finsync.audit.signing import write_new_key
from finsync.auth import tokens
from finsync.auth.local import mapped_principal, require
from finsync.auth.principal import (
    ADMIN,
    AUDIT_READ,
    EXCEPTIONS_ACT,
    EXCEPTIONS_APPROVE,
    FINANCE_READ,
    PERIODS_MANAGE,
    PII_READ,
    Principal,
)
from finsync.bootstrap import (
    Finance,
    build_billing_service,
    build_finance,
    build_ledger_service,
    build_token_store,
)
from finsync.config import DEFAULT_CONFIG, FinsyncConfig, load_config, parse_config
from finsync.demo import report
from finsync.demo.clock import SimClock
from finsync.demo.cpq import CONTRACT, ENTITY, ORDER, SOURCE, UPGRADE, YEAR
from finsync.demo.workflow import CLERK_LOGIN, CONTROLLER_LOGIN, OPS_LOGIN, People, Workflow
from finsync.domain.clock import utc_now
from finsync.hub.cpq_status import contract_status
from finsync.hub.replay import ReplayFilter
from finsync.recon.service import net_revenue_accounts
from finsync.systems.billing.service import BillingService

AS_OF = date(YEAR, 12, 31)
SIGNING_KEY = "var/audit-signing.pem"
CONFIG_FILE = "finsync.toml"
# The demo's people: the AR clerk asks, the controller approves and closes, operations
# clears junk from the queue.
PRINCIPALS = {
    "ar.clerk": [FINANCE_READ, EXCEPTIONS_ACT],
    "controller": [FINANCE_READ, EXCEPTIONS_ACT, EXCEPTIONS_APPROVE, PERIODS_MANAGE],
    "ops.engineer": [FINANCE_READ, EXCEPTIONS_ACT],
}
OS_USERS = {CLERK_LOGIN: "ar.clerk", CONTROLLER_LOGIN: "controller", OPS_LOGIN: "ops.engineer"}
# Who runs the demo administers the kept folder (`finsync serve`, `finsync tokens`).
ADMIN_PRINCIPAL = "demo.admin"
# The console's people of a kept demo, each with a token of these scopes
# (`console-tokens.txt`): the AR clerk, revenue accountant, controller and auditor.
CONSOLE_ROLES = {
    "ar.clerk": [FINANCE_READ, EXCEPTIONS_ACT],
    "revenue.accountant": [FINANCE_READ],
    "controller": [FINANCE_READ, EXCEPTIONS_ACT, EXCEPTIONS_APPROVE, PERIODS_MANAGE, PII_READ],
    "auditor": [FINANCE_READ, AUDIT_READ],
}
TOKENS_FILE = "console-tokens.txt"


def run_demo(directory: Path | None = None, *, keep: bool = False) -> dict[str, Any]:
    """The year of the reference workflow, in `directory` (kept), or in a new temporary
    folder that is removed afterwards, even on failure, unless `keep`; returns the report
    as JSON values."""
    temporary = directory is None
    workdir = directory or Path(tempfile.mkdtemp(prefix="finsync-demo-"))
    kept = keep or not temporary
    try:
        report = {"workdir": str(workdir), "workdir_kept": kept, **_year(workdir)}
        if kept:
            report["console_tokens"] = str(console_tokens(workdir))
        return report
    finally:
        if temporary and not keep:
            _remove(workdir)


def console_tokens(workdir: Path) -> Path:
    """A token for each of `CONSOLE_ROLES` on the demo's database, written (owner-only) to
    `console-tokens.txt` in the folder: log in to `finsync serve`'s console with one."""
    engine = build_token_store(load_config(workdir / CONFIG_FILE))
    admin = Principal.of(ADMIN_PRINCIPAL, [ADMIN])
    try:
        made = {role: tokens.create(engine, admin, f"demo console: {role}", role, scopes,
                                    utc_now(), reason="the kept demo's console").secret
                for role, scopes in CONSOLE_ROLES.items()}
    finally:
        engine.dispose()
    target = workdir / TOKENS_FILE
    target.touch(mode=0o600)
    target.write_text("".join(f"{role}\t{secret}\n" for role, secret in made.items()))
    return target


def _remove(workdir: Path) -> None:
    try:
        shutil.rmtree(workdir)
    except OSError as exc:  # the report stands; say what was left behind
        logging.getLogger(__name__).warning("could not remove the demo's folder %s: %s",
                                            workdir, exc)


PUMPED = '[pumps]\nbilling = "billing"\n'
CUSTOMER_OWNER = '[ownership]\ncustomer = "billing"\n'
# The demo's CPQ is the shipped one (finsync's CPQ source `cpq`, file drops and signed
# requests); in the demo it owns the customer master (the CRM's accounts) as it owns the
# commercial contracts.
CPQ_SOURCE = f'{SOURCE} = "cpq"\n'


def config_text() -> str:
    """The demo's `finsync.toml`: the shipped configuration without pumps (the demo plays
    billing's webhooks itself, to inject faults), with the CPQ source the year starts from
    (it owns customers), its people under `[auth]`, and the audit key. Written in the work
    folder, so that a kept demo can be served and explored:
    `finsync serve --config <folder>/finsync.toml`."""
    shipped = DEFAULT_CONFIG.read_text()
    for part in (PUMPED, CUSTOMER_OWNER, CPQ_SOURCE):
        if part not in shipped:
            raise ValueError(f"the shipped configuration changed ({part.strip()!r} is "
                             "gone): update the demo's")
    shipped = shipped.replace(PUMPED, "[pumps]\n# none: the demo plays billing's webhooks\n")
    shipped = shipped.replace(CUSTOMER_OWNER, f'[ownership]\ncustomer = "{SOURCE}"\n')
    lines = [shipped]
    for name, scopes in PRINCIPALS.items():
        lines.append(f"\n[auth.principals.{json.dumps(name)}]\nscopes = {json.dumps(scopes)}\n")
    lines.append(f"\n[auth.principals.{json.dumps(ADMIN_PRINCIPAL)}]\n"
                 f"scopes = {json.dumps([ADMIN, FINANCE_READ])}\n")
    lines.append("\n[auth.os_users]\n")
    users = {getpass.getuser(): ADMIN_PRINCIPAL, **OS_USERS}
    lines.extend(f"{json.dumps(login)} = {json.dumps(name)}\n" for login, name in users.items())
    lines.append(f"\n[audit]\nsigning_key_file = {json.dumps(SIGNING_KEY)}\n")
    return "".join(lines)


def _year(workdir: Path) -> dict[str, Any]:
    shutil.rmtree(workdir / "var", ignore_errors=True)
    (workdir / "var").mkdir(parents=True)
    write_new_key(workdir / SIGNING_KEY)  # each close signs the trail's head with it
    (workdir / CONFIG_FILE).write_text(config_text())
    config = parse_config(tomllib.loads(config_text()), workdir.resolve())
    clock = SimClock(datetime(YEAR, 1, 1, tzinfo=UTC))
    finance = build_finance(config, clock=clock)
    try:
        return _drive(finance, config, clock)
    finally:
        finance.hub.engine.dispose()


def people(config: FinsyncConfig) -> People:
    """The demo's people, each authenticated as the principal its login is mapped to."""
    def login(name: str, scope: str) -> Principal:
        principals = {n: p.scopes for n, p in config.auth.principals.items()}
        return require(mapped_principal(name, config.auth.os_users, principals), scope)
    return People(login(CLERK_LOGIN, EXCEPTIONS_ACT), login(CONTROLLER_LOGIN, PERIODS_MANAGE),
                  login(OPS_LOGIN, EXCEPTIONS_ACT))


def _drive(finance: Finance, config: FinsyncConfig, clock: SimClock) -> dict[str, Any]:
    hub = finance.hub
    billing = build_billing_service(config, hub.engine, clock)
    ledger = build_ledger_service(config, hub.engine, clock=clock)
    log = Workflow(finance, billing, clock, people(config)).run()
    recon = finance.recon.run(AS_OF)
    books = report.books(ledger, AS_OF)
    replayed = hub.replay(ReplayFilter(everything=True))
    hub.run_until_idle()
    status = hub.status()
    timeline = hub.timeline(UPGRADE)
    postings = [d for d in hub.delivered(finance.ports.ledgers) if d.posting]
    revenue_account = net_revenue_accounts(finance.ports.revenue().account_map())
    result: dict[str, Any] = {
        "invoices": [report.invoice(s) for s in billing.invoices()],
        "journal_entries": books["entries"],
        "revenue_recognized": report.revenue_recognised(ledger.entries(ENTITY),
                                                        revenue_account),
        "reconciliation": report.reconciliation(recon),
        "exceptions": report.exceptions(finance.triage.listing(status=None)),
        "duplicates_ignored": status["duplicates_ignored"],
        "parked_out_of_order": log.parked,
        "correlation_chains_complete": report.chains_complete(
            postings, ledger.entries(), (m["name"] for m in timeline)),
        "amendment_correlation_id": UPGRADE,
        "amendment_timeline": [{"milestone": m["name"], "system": m["target"],
                                "at": m["recorded_at"].isoformat()} for m in timeline],
        "amendment_status": hub.transaction_status(UPGRADE),
        "closes": log.closes,
        "triage_actions": log.actions,
        "books_unchanged_by_replay": books == report.books(ledger, AS_OF),
        "replay": {"events": replayed.events, "deliveries_resent": replayed.requeued},
        "trial_balance": books["trial_balance"],
        "status": status,
        "audit": finance.audit.verify().as_json(),
    }
    result["faults"] = report.faults(result, log.faults)
    result["cpq"] = report.cpq(log.cpq, contract_status(hub.engine, CONTRACT),
                               _billing_versions(billing))
    return result


def _billing_versions(billing: BillingService) -> dict[str, int]:
    """Quote id -> the version of billing's contract it made (the new order made 1)."""
    sub = billing.state().subscription(CONTRACT)
    return {ORDER: sub.history[0].contract.version,
            **{a.id: a.version for a in sub.amendments}}
