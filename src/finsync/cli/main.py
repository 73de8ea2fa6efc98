"""`finsync` commands. Each accepts `--json` and then prints exactly one JSON object.

Each acts as the authenticated principal (`common.acting`) and needs its scope: `ingest`
`events:write:<source>`; `run`, `serve` and `db upgrade` `admin`; `replay` `exceptions:act`;
the reports `finance:read`. `init` writes the configuration, with an `[auth]` section that
maps the current OS login to a principal with an operator's scopes; `demo` works in a
database of its own."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from finsync.audit.signing import parse_private, public_hex, write_new_key
from finsync.auth.principal import (
    ADMIN,
    AUDIT_READ,
    EXCEPTIONS_ACT,
    FINANCE_READ,
    PERIODS_MANAGE,
    PII_READ,
    PrincipalError,
    events_write,
    normalise,
)
from finsync.bootstrap import approved_config, build_engine, migrate_database, nats_settings
from finsync.cli import audit as audit_cli
from finsync.cli import billing as billing_cli
from finsync.cli import cluster as cluster_cli
from finsync.cli import controls as controls_cli
from finsync.cli import cpq as cpq_cli
from finsync.cli import finance as finance_cli
from finsync.cli import generate as generate_cli
from finsync.cli import hubspot as hubspot_cli
from finsync.cli import ledger as ledger_cli
from finsync.cli import output, serving
from finsync.cli import revrec as revrec_cli
from finsync.cli import stripe as stripe_cli
from finsync.cli import tax as tax_cli
from finsync.cli import tokens as tokens_cli
from finsync.cli import tryton as tryton_cli
from finsync.cli import usage as usage_cli
from finsync.cli import worker as worker_cli
from finsync.cli.common import ConfigPath, Json, authorised, guarded, os_login
from finsync.cli.common import hub_for as _hub
from finsync.config import DEFAULT_CONFIG, load_config
from finsync.domain.clock import parse_utc
from finsync.hub.replay import ReplayFilter
from finsync.hub.status import (
    STATUS_FILTERS,
    UNRESOLVED_FILTER,
    BudgetWait,
    HubStatus,
    Waiting,
)

app = typer.Typer(help="finsync: every financial effect of a contract change, once, everywhere.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
exceptions_app = typer.Typer(help="The exception queue.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(exceptions_app, name="exceptions")
app.add_typer(ledger_cli.app, name="ledger")
app.add_typer(billing_cli.app, name="billing")
app.add_typer(revrec_cli.app, name="revrec")
app.command()(finance_cli.close)
app.command("close-check")(finance_cli.close_check)
app.command()(finance_cli.reconcile)
app.command()(finance_cli.metrics)
app.command("generate")(generate_cli.command)
finance_cli.register(exceptions_app)
app.add_typer(stripe_cli.app, name="stripe")
app.add_typer(hubspot_cli.app, name="hubspot")
app.add_typer(tryton_cli.app, name="tryton")
app.add_typer(usage_cli.app, name="usage")
app.add_typer(tax_cli.app, name="tax")
app.add_typer(tokens_cli.app, name="tokens")
app.add_typer(audit_cli.app, name="audit")
app.add_typer(controls_cli.app, name="config")
app.add_typer(cpq_cli.app, name="cpq")
app.add_typer(cluster_cli.app, name="cluster")
app.command("worker")(worker_cli.command)




# What `finsync init` maps the current login to: what an operator needs day to day. Approving
# (`exceptions:approve`) is left to a second person on purpose, and so is `pii:read`.
OPERATOR_SCOPES = (events_write("*"), FINANCE_READ, EXCEPTIONS_ACT, PERIODS_MANAGE, ADMIN,
                   AUDIT_READ)


_AUTH_SECTION = """
# Who the CLI acts as (docs/security.md): the OS login is mapped to a principal, never a name
# typed on the command line (with FINSYNC_TOKEN set, the CLI acts as the token's principal).
# What needs two people (corrections above the threshold, reopening a period, changes to
# [ownership], [routes] and [triage]) is approved by a second principal that holds
# "exceptions:approve" (and "admin" for configuration): add one and map its login, e.g.
#   [auth.principals.controller]
#   scopes = ["finance:read", "exceptions:approve", "periods:manage", "admin"]
# and under [auth.os_users]: jane = "controller"
[auth.principals.{principal}]
scopes = [{scopes}]

[auth.os_users]
{login} = {principal}
"""


def auth_section(login: str) -> str:
    """The `[auth]` section `finsync init` writes: `login` acts as a principal of its own
    name (normalised; `operator` when the login cannot be a principal id)."""
    try:
        principal = normalise(login)
    except PrincipalError:
        principal = "operator"
    # JSON strings are TOML basic strings: quoted keys and values, whatever the login holds.
    return _AUTH_SECTION.format(principal=json.dumps(principal), login=json.dumps(login),
                                scopes=", ".join(json.dumps(s) for s in OPERATOR_SCOPES))


SIGNING_KEY = "var/audit-signing.pem"
_AUDIT_SECTION = """
# Written by `finsync init`: the key that signs the audit trail's checkpoints (daily and at
# each close), readable by its owner only. Keep a copy of its public key with the auditors.
[audit]
signing_key_file = {file}
"""


def _signing_key(directory: Path) -> str:
    """The public key of `directory`'s audit signing key, made now if it has none."""
    path = directory / SIGNING_KEY
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        return public_hex(parse_private(path.read_text(), f"the file {path}"))
    return write_new_key(path)


@app.command()
def init(directory: Annotated[Path, typer.Argument()] = Path("."),
         force: Annotated[bool, typer.Option(help="Overwrite finsync.toml.")] = False,
         as_json: Json = False) -> None:
    """Write finsync.toml in DIRECTORY and create the database."""
    with guarded(as_json):
        target = directory / "finsync.toml"
        if target.exists() and not force:
            output.fail(f"{target} exists (use --force to overwrite)", "config_exists",
                        as_json=as_json)
        directory.mkdir(parents=True, exist_ok=True)
        login = os_login()
        key = _signing_key(directory)
        target.write_text(DEFAULT_CONFIG.read_text() + auth_section(login)
                          + _AUDIT_SECTION.format(file=json.dumps(SIGNING_KEY)))
        loaded = load_config(target)
        migrated = migrate_database(loaded)
        engine = build_engine(loaded)
        try:
            fingerprint = approved_config(loaded, engine)
        finally:
            engine.dispose()
        result = {"config": str(target.resolve()), "database": migrated.database,
                  "revision": migrated.after, "login": login, "audit_public_key": key,
                  "principal": loaded.auth.os_users[login], "config_fingerprint": fingerprint}
        if as_json:
            output.emit_json(result)
        else:
            output.console.print(f"wrote {result['config']}; database at revision "
                                 f"{result['revision']}; {login} acts as "
                                 f"{result['principal']}")


@db_app.command("upgrade")
def db_upgrade(config: ConfigPath = None, as_json: Json = False) -> None:
    """Apply the Alembic migrations up to the newest revision."""
    with guarded(as_json):
        loaded = load_config(config)
        authorised(loaded, ADMIN)
        migrated = migrate_database(loaded)
        result = {"database": migrated.database, "from": migrated.before, "to": migrated.after}
        if as_json:
            output.emit_json(result)
        else:
            output.console.print(f"{migrated.database}: {migrated.before or 'empty'} -> "
                                 f"{migrated.after}")


def _read_lines(file: Path) -> list[bytes]:
    data = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
    return [line for line in data.splitlines() if line.strip()]


@app.command()
def ingest(file: Annotated[Path, typer.Argument(help="JSON lines; '-' reads stdin.")],
           source: Annotated[str, typer.Option(help="Intake source name.")] = "canonical",
           config: ConfigPath = None, as_json: Json = False) -> None:
    """Store each line of FILE as a raw event of SOURCE (durably, in batches)."""
    with guarded(as_json), _hub(config, events_write(source)) as (hub, _who):
        if not hub.mappers.knows(source):
            output.fail(f"unknown source {source!r}; configured: see [sources]",
                        "unknown_source", as_json=as_json)
        if str(file) != "-" and not file.exists():
            output.fail(f"no such file: {file}", "file_not_found", as_json=as_json)
        lines = _read_lines(file)
        batch = hub.settings.intake_batch_size
        stored = 0
        with output.progress_bar(not as_json) as progress:
            for start in range(0, len(lines), batch):
                chunk = lines[start:start + batch]
                stored += hub.store(source, chunk, {"x-finsync-file": file.name})
                progress("stored", stored, len(lines))
        if as_json:
            output.emit_json({"stored": stored, "source": source})
        else:
            output.console.print(f"stored {stored} raw events from {file} as {source}")


@app.command()
def run(loop: Annotated[bool, typer.Option(help="Keep polling until stopped.")] = False,
        interval_s: Annotated[float, typer.Option(help="Poll interval with --loop.")] = 1.0,
        wait: Annotated[bool, typer.Option(help="Wait for retries that fall due within "
                                           "--wait-max-s (--no-wait: return once idle).")]
        = True,
        wait_max_s: Annotated[float, typer.Option(min=0, help="The longest wait for a "
                                                  "retry, in seconds.")] = 120.0,
        config: ConfigPath = None, as_json: Json = False) -> None:
    """Map, de-duplicate, sequence, route and deliver until nothing is left to do, waiting for
    retries that fall due soon; then say what is still waiting."""
    with guarded(as_json), _hub(config, ADMIN, controlled=True) as (hub, _who):
        budget_s = wait_max_s if wait and not loop else 0.0
        announce = None if as_json else _announce_wait
        while True:
            with output.progress_bar(not as_json and not loop) as progress:
                summary, _ = hub.run_until_settled(budget_s, progress, on_wait=announce)
            if not loop:
                break
            time.sleep(interval_s)
        status = hub.status_report()
        if as_json:
            output.emit_json({"run": asdict(summary), "status": status.as_json()})
            return
        output.counts_table("processed", {"raw events": summary.raw_processed,
                                          **summary.outcomes,
                                          "deliveries attempted": summary.deliveries_attempted})
        _print_status(status)


def _announce_wait(waiting: Waiting, delay_s: float) -> None:
    output.note(f"waiting {delay_s:.1f} s for {waiting.retrying} deliveries to retry and "
                f"{waiting.due} due ones (--no-wait returns at once)")


def _print_status(status: HubStatus) -> None:
    output.counts_table("raw events", status.raw_events)
    output.counts_table("events", status.events)
    output.counts_table("deliveries", status.deliveries)
    output.console.print(f"duplicates ignored: {status.duplicates_ignored}")
    _print_unresolved(status)
    _print_waiting(status.waiting)
    _print_budget_waits(status.budget_waits)
    if status.usage.get("events"):
        output.counts_table("usage (meter events and their totals for billing)", status.usage)
    _print_held(status)
    if status.dunning.get("declined_attempts"):
        output.counts_table("dunning (threads whose last payment attempt was declined)",
                            status.dunning)


def _print_held(status: HubStatus) -> None:
    held = status.held_for_tax
    if not held.count:  # none held: nothing to say (they are among the exceptions anyway)
        return
    output.console.print(f"invoices held for tax: {held.count}, at stake "
                         f"{output.money(held.amounts)} (see them with `finsync exceptions "
                         "list --class tax_failure`)")


def _print_unresolved(status: HubStatus) -> None:
    if not status.unresolved:
        output.console.print("unresolved exceptions: none")
        return
    output.table(f"unresolved exceptions: {status.unresolved_count}, at stake "
                 f"{output.money(status.at_stake)}", ["status", "class", "count", "at stake"],
                 [[g.status.value, g.exception_class, g.count, output.money(g.amounts)]
                  for g in status.unresolved])
    output.console.print("see them with `finsync exceptions list`")


_BUDGET_LIMITS = {"calls_per_minute": "its calls per minute are spent",
                  "daily_cap": "its daily cap is reached (until the next UTC day)",
                  "retry_after": "it asked to be called later (retry-after)"}


def _print_budget_waits(waits: Sequence[BudgetWait]) -> None:
    for wait in waits:
        output.console.print(f"calls to {wait.target} held back: "
                             f"{_BUDGET_LIMITS.get(wait.limit, wait.limit)}; the next may go "
                             f"in {output.duration(wait.seconds)}")


def _print_waiting(waiting: Waiting) -> None:
    if waiting.nothing:
        output.console.print("waiting to be delivered: nothing")
        return
    parts = []
    if waiting.retrying:
        when = waiting.next_retry_at
        at = when.isoformat(timespec="seconds") if when else "?"
        parts.append(f"{waiting.retrying} to retry (the next at {at})")
    if waiting.due:
        parts.append(f"{waiting.due} due and not delivered yet (waiting for a run, a "
                     "call budget, or an earlier delivery of their aggregate that failed)")
    if waiting.in_flight:
        parts.append(f"{waiting.in_flight} in flight")
    output.console.print("waiting to be delivered: " + "; ".join(parts))


@app.command()
def status(config: ConfigPath = None, as_json: Json = False) -> None:
    """Counts of raw events, events, deliveries and duplicates; every unresolved exception
    with its money at stake; what still waits to be delivered."""
    with guarded(as_json):
        with _hub(config, FINANCE_READ) as (hub, _who):
            report = hub.status_report()
        if as_json:
            output.emit_json(report.as_json())
        else:
            _print_status(report)


@app.command()
def timeline(correlation_id: str, config: ConfigPath = None, as_json: Json = False) -> None:
    """The business milestones of one correlation id, in order."""
    with guarded(as_json):
        with _hub(config, FINANCE_READ) as (hub, _who):
            rows = hub.timeline(correlation_id)
            state = hub.transaction_status(correlation_id)
        if as_json:
            output.emit_json({"correlation_id": correlation_id, "milestones": rows, **state})
        else:
            output.table(f"milestones of {correlation_id}", ["at", "milestone", "system", "event"],
                         [[r["recorded_at"], r["name"], r["target"], r["event_id"]]
                          for r in rows])
            dunning = "; in dunning" if state["dunning"] else ""
            output.console.print(f"technical status: {state['technical']}; financial status: "
                                 f"{state['financial']}{dunning}")


@app.command()
def calls(correlation_id: str, config: ConfigPath = None, as_json: Json = False) -> None:
    """Every external call made for one correlation id (to every system), oldest first:
    method, endpoint, status, duration and idempotency key, from the call log."""
    with guarded(as_json):
        with _hub(config, AUDIT_READ) as (hub, _who):
            found = hub.calls(correlation_id)
        if as_json:
            output.emit_json({"correlation_id": correlation_id,
                              "calls": [c.as_json() for c in found]})
        else:
            output.table(f"external calls of {correlation_id}",
                         ["at", "system", "method", "endpoint", "status", "ms",
                          "idempotency key"],
                         [[c.started_at.isoformat(), c.system, c.method, c.endpoint,
                           c.status if c.error is None else f"{c.status} {c.error}",
                           f"{c.duration_us / 1000:.1f}", ", ".join(c.idempotency_keys)]
                          for c in found])


def _aggregate(text: str | None) -> tuple[str, str] | None:
    if text is None:
        return None
    kind, sep, ident = text.partition(":")
    if not sep or not kind or not ident:
        raise typer.BadParameter("use TYPE:ID, e.g. subscription_contract:con_1")
    return kind, ident


@app.command()
def replay(correlation_id: Annotated[str | None, typer.Option()] = None,
           aggregate: Annotated[str | None, typer.Option(help="TYPE:ID")] = None,
           since: Annotated[str | None, typer.Option(help="ISO timestamp, inclusive")] = None,
           until: Annotated[str | None, typer.Option(help="ISO timestamp, exclusive")] = None,
           everything: Annotated[bool, typer.Option("--all")] = False,
           reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the audit "
                                               "trail).")] = "",
           config: ConfigPath = None, as_json: Json = False) -> None:
    """Re-drive deliveries from the event log; effects that exist are not repeated."""
    with guarded(as_json):
        selection = ReplayFilter(correlation_id, _aggregate(aggregate),
                                 parse_utc(since) if since else None,
                                 parse_utc(until) if until else None, everything)
        if selection.is_empty:
            output.fail("say what to replay: --correlation-id, --aggregate, --since/--until "
                        "or --all", "empty_selection", as_json=as_json, exit_code=2)
        if not reason.strip():
            output.fail("say why (--reason): a replay is recorded in the audit trail",
                        "reason_required", as_json=as_json, exit_code=2)
        with _hub(config, EXCEPTIONS_ACT, controlled=True) as (hub, who), \
                output.progress_bar(not as_json) as progress:
            result = hub.replay(selection, progress, actor=who.id, reason=reason)
            summary = hub.run_until_idle(progress)
        data = {"replay": asdict(result), "run": asdict(summary)}
        if as_json:
            output.emit_json(data)
        else:
            output.console.print(f"replayed {result.events} events: {result.requeued} "
                                 f"deliveries re-sent, {result.added} new")


@exceptions_app.command("list")
def exceptions_list(status: Annotated[str, typer.Option(
                        help=f"One of: {', '.join(STATUS_FILTERS)}.")] = UNRESOLVED_FILTER,
                    klass: Annotated[str | None, typer.Option("--class")] = None,
                    config: ConfigPath = None, as_json: Json = False) -> None:
    """Exceptions by status and class (default: every unresolved one: open, retrying,
    awaiting approval), with the money at stake."""
    with guarded(as_json):
        with _hub(config, FINANCE_READ) as (hub, who):
            listing = hub.exception_listing(status, klass, can_read_pii=who.can(PII_READ))
        if as_json:
            output.emit_json(listing.as_json())
            return
        output.table("exceptions", ["id", "class", "status", "at stake", "correlation", "summary"],
                     [[r["id"], r["class"], r["status"], r["amount_at_stake"],
                       r["correlation_id"], r["summary"]] for r in listing.rows])
        complete = listing.count == len(listing.rows)
        shown = "" if complete else f" (the first {len(listing.rows)} shown)"
        output.console.print(f"{listing.count} exception(s), status {status}{shown}; "
                             f"unresolved money at stake: {output.money(listing.at_stake)}")


@app.command()
def serve(host: str = "127.0.0.1", port: int = 8080,
          interval_s: Annotated[float, typer.Option(help="Pipeline poll interval.")] = 1.0,
          workers: Annotated[int, typer.Option(min=1, help="HTTP processes; with more than "
                                               "one, the pipeline runs in a process of its "
                                               "own.")] = 1,
          pipeline: Annotated[bool, typer.Option(help="Run the pipeline (--no-pipeline: HTTP "
                                                 "only, e.g. beside `run --loop`).")] = True,
          pipeline_process: Annotated[bool | None, typer.Option(
              "--pipeline-process/--pipeline-in-process",
              help="Run the pipeline in a process of its own, or in the HTTP process's "
                   "threads (default: its own process with more than one worker).")] = None,
          role: Annotated[serving.Role, typer.Option(
              help="all: the API with the pipeline (today's single process); intake: an "
                   "intake node that publishes to NATS JetStream ([transport] kind = "
                   "\"nats\"), runs no pipeline and stores nothing but refusals.")]
          = serving.Role.ALL,
          config: ConfigPath = None) -> None:
    """Start the HTTP API with a background pipeline worker (or an intake node)."""
    import os

    import uvicorn

    try:
        own_process = serving.runs_apart(pipeline and role is serving.Role.ALL, workers,
                                         pipeline_process)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--pipeline-in-process") from None
    with guarded(False):
        # Refuse a bad configuration, a principal without `admin` and a controlled change
        # nobody approved before binding the port.
        with _hub(config, ADMIN, controlled=True):
            pass
        if role is serving.Role.INTAKE:
            nats_settings(load_config(config), "serve --role intake")
        if config is not None:
            os.environ["FINSYNC_CONFIG"] = str(config.resolve())
        os.environ["FINSYNC_WORKER_INTERVAL_S"] = str(interval_s)
        os.environ["FINSYNC_ROLE"] = role.value
        os.environ["FINSYNC_PIPELINE"] = ("on" if pipeline and role is serving.Role.ALL
                                          and not own_process else "off")
        with serving.pipeline_process(own_process):
            # By name, so that the CLI does not import the API (entry points stay apart).
            uvicorn.run("finsync.api.main:app_from_environment", factory=True, host=host,
                        port=port, log_level="info", workers=workers)


STACKS = ("stripe-tryton",)


@app.command()
def demo(directory: Annotated[Path | None, typer.Option(help="Where to keep the demo's "
                                                         "database and exports.")] = None,
         keep: Annotated[bool, typer.Option(help="Keep the temporary work folder.")] = False,
         stack: Annotated[str | None, typer.Option(
             help="Run on real systems instead: 'stripe-tryton' (Stripe or localstripe, "
                  "Tryton, the hub's store in PostgreSQL; docs/demo-stack.md).")] = None,
         stripe_url: Annotated[str | None, typer.Option(
             help="--stack: Stripe's API (https://api.stripe.com) or an emulator's.")] = None,
         stripe_key_env: Annotated[str, typer.Option(
             help="--stack: the environment variable holding the secret key.")]
         = "STRIPE_API_KEY",
         tryton_url: Annotated[str | None, typer.Option(help="--stack: trytond's URL.")]
         = None,
         tryton_database: Annotated[str | None, typer.Option(
             help="--stack: the Tryton database (account_invoice activated).")] = None,
         tryton_user: Annotated[str, typer.Option(help="--stack: Tryton's user.")] = "admin",
         tryton_password_env: Annotated[str, typer.Option(
             help="--stack: the environment variable holding Tryton's password.")]
         = "FINSYNC_TRYTON_PASSWORD",
         tryton_company: Annotated[str, typer.Option(
             help="--stack: the company whose books it is (set up when missing).")]
         = "Acme Analytics Inc.",
         database_url: Annotated[str | None, typer.Option(
             help="--stack: the hub's store, an empty database (default: "
                  "FINSYNC_DATABASE_URL).")] = None,
         as_json: Json = False) -> None:
    """Run the reference workflow through the hub in a fresh SQLite database (in a temporary
    folder, removed afterwards unless --keep or --directory); with --stack, on running
    systems, exiting non-zero unless the year reconciles to zero."""
    from finsync.cli import demo as demo_cli
    from finsync.demo.stack_config import StackSettings

    with guarded(as_json):
        if stack is None:
            demo_cli.run(directory, keep=keep, as_json=as_json)
            return
        if stack not in STACKS:
            raise typer.BadParameter(f"--stack is one of {', '.join(STACKS)}, not {stack!r}")
        database = database_url or os.environ.get("FINSYNC_DATABASE_URL")
        if not (stripe_url and tryton_url and tryton_database and database):
            raise typer.BadParameter("--stack needs --stripe-url, --tryton-url, "
                                     "--tryton-database and --database-url (or "
                                     "FINSYNC_DATABASE_URL)")
        demo_cli.run_on_stack(StackSettings(
            stripe_url, tryton_url, tryton_database, database, stripe_key_env, tryton_user,
            tryton_password_env, tryton_company), directory, keep=keep, as_json=as_json)


def main() -> None:
    app()
