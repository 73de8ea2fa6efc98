"""Finance's commands: period close, reconciliation, metrics and the exception queue's
actions. Each acts as the authenticated principal (`common.acting`) and needs its scope:
reading `finance:read`, the queue's actions `exceptions:act`, approving or rejecting them
`exceptions:approve`, closing a period `periods:manage`. Those that run the pipeline refuse
a controlled configuration that is not approved (`config_not_approved`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from finsync.auth.principal import (
    EXCEPTIONS_ACT,
    EXCEPTIONS_APPROVE,
    FINANCE_READ,
    PERIODS_MANAGE,
    PII_READ,
    Principal,
)
from finsync.bootstrap import Finance, approved_config, build_finance, measure_metrics
from finsync.cli import output
from finsync.cli.common import ConfigPath, Json, RowId, authorised, guarded
from finsync.config import load_config
from finsync.domain.clock import parse_date
from finsync.domain.money import to_decimal
from finsync.hub.status import STATUS_FILTERS, UNRESOLVED_FILTER
from finsync.triage.service import Keep
from finsync.views import exceptions as exceptions_view
from finsync.views.close import period_view
from finsync.views.services import build_services

Reason = Annotated[str, typer.Option("--reason", "--note", help="Why (recorded).")]


@contextmanager
def finance(config: Path | None, scope: str, *,
            controlled: bool = False) -> Iterator[tuple[Finance, Principal]]:
    """Finance for a principal holding `scope`; `controlled`: the command uses the routes,
    ownership map or thresholds, which must be the approved ones."""
    loaded = load_config(config)
    principal = authorised(loaded, scope)
    built = build_finance(loaded)
    try:
        if controlled:
            approved_config(loaded, built.hub.engine, built.hub.clock)
        yield built, principal
    finally:
        built.dispose()


IntoOpenPeriod = Annotated[bool, typer.Option(
    "--into-open-period", help="The ERP period is closed already: send its revenue journals "
    "anyway, to be re-routed to the first open period (`finsync exceptions reroute`).")]


def close(entity: Annotated[str, typer.Option("--entity", "-e")],
          period: Annotated[str, typer.Option("--period", "-p", help="YYYY-MM")],
          into_open_period: IntoOpenPeriod = False,
          config: ConfigPath = None, as_json: Json = False) -> None:
    """Close a month: check the cut-off, post the revenue journals, close the ERP period.

    A period already closed in the ERP is `already_closed` only when its
    revenue journals are posted; otherwise the close is refused with the
    code `revenue_not_posted` and the way out (reopen the period, or
    --into-open-period and re-route).
    """
    with guarded(as_json), finance(config, PERIODS_MANAGE, controlled=True) as (f, who):
        result = f.close.close(entity, period, who.id, into_open_period=into_open_period)
    if as_json:
        output.emit_json(result.as_json())
    elif result.awaiting_reroute:
        output.console.print(f"{entity} {period}: {result.status} "
                             f"({len(result.journals)} revenue journal(s) in "
                             f"{', '.join(result.awaiting_reroute)}; re-route with "
                             "`finsync exceptions reroute ID --reason ...`)")
    else:
        output.console.print(f"{entity} {period}: {result.status} "
                             f"({len(result.journals)} revenue journal(s) posted)")


def close_check(entity: Annotated[str, typer.Option("--entity", "-e")],
                period: Annotated[str, typer.Option("--period", "-p", help="YYYY-MM")],
                config: ConfigPath = None, as_json: Json = False) -> None:
    """The close's checklist for one period, read without changing anything: each item's
    state (`outstanding` items make `finsync close` refuse), the revenue journals."""
    with guarded(as_json), finance(config, FINANCE_READ) as (f, _who):
        view = period_view(build_services(load_config(config), f), entity, period).as_json()
    if as_json:
        output.emit_json(view)
        return
    output.table(f"{entity} {period}: {view['status']}"
                 f"{' (the close would be refused)' if view['blocks'] else ''}",
                 ["check", "state", "items"],
                 [[i["label"], i["state"], f"{i['count']}{'+' if i['more'] else ''}"]
                  for i in view["checklist"]])
    output.table("revenue journals", ["journal", "posting date", "state", "total"],
                 [[j["id"], j["posting_date"], j["state"],
                   ", ".join(f"{t['amount']} {t['currency']}" for t in j["totals"])]
                  for j in view["journals"]])


UNEXPLAINED_BREAKS_EXIT = 3  # code `unexplained_breaks` (docs/finance-operations.md)


def reconcile(as_of: Annotated[str, typer.Option("--as-of", help="ISO date.")],
              config: ConfigPath = None, as_json: Json = False) -> None:
    """Run the reconciliation checks for every entity as of a date.

    Exits 0 when every item agrees or every break is explained (an exception
    of another class names its object, or its period is not closed yet), and
    3 with the code `unexplained_breaks` when a break is unexplained: each
    is a reconciliation_break in `finsync exceptions list` until a run finds
    it agreeing. The run is in the audit trail as yours.
    """
    with guarded(as_json), finance(config, FINANCE_READ) as (f, who):
        report = f.recon.run(parse_date(as_of), actor=who.id)
    checks = [c.as_dict() for c in report.checks]
    totals = {k: str(v.amount) for k, v in report.total_variance().items()}
    unexplained = len(report.unexplained)
    message = (f"{unexplained} unexplained break(s) as of {as_of}; each is a "
               "reconciliation_break in `finsync exceptions list`")
    if not as_json:
        _render_report(as_of, checks)
        if unexplained:
            output.fail(message, "unexplained_breaks", as_json=False,
                        exit_code=UNEXPLAINED_BREAKS_EXIT)
        return
    error = {"error": {"code": "unexplained_breaks", "message": message}}
    output.emit_json({"as_of": as_of, "checks": checks, "total_variance": totals,
                      "unexplained_breaks": unexplained, **(error if unexplained else {})})
    if unexplained:
        raise typer.Exit(UNEXPLAINED_BREAKS_EXIT)


def _render_report(as_of: str, checks: list[dict[str, Any]]) -> None:
    output.table(f"reconciliation as of {as_of}", ["check", "entity", "items", "breaks",
                                                   "variance"],
                 [[c["name"], c["legal_entity"], c["items"], len(c["breaks"]),
                   f"{c['variance']} {c['currency']}"] for c in checks])
    for check in checks:
        for item in check["breaks"]:
            output.console.print(f"[red]break[/] {check['name']} {item['ref']}: "
                                 f"{item['cause']} ({item['variance']} {item['currency']})"
                                 f" — {item['explained_by'] or 'unexplained'}")


def metrics(config: ConfigPath = None, as_json: Json = False) -> None:
    """The metrics of DESIGN §7 in the Prometheus text format (--json: as the console's
    `GET /v1/metrics` shows them; one computation)."""
    with guarded(as_json), finance(config, FINANCE_READ) as (f, _who):
        measured = measure_metrics(f)
    if as_json:
        output.emit_json(measured.as_json())
    else:
        typer.echo(measured.as_prometheus(), nl=False)


SUMMARY_CHARS = 60  # of each summary in the terminal's table (--json has them whole)
Bound = Annotated[str | None, typer.Option(help="Absolute money at stake, in its own "
                                              "currency (a decimal).")]


def queue(status: Annotated[str, typer.Option(
              help=f"One of: {', '.join(STATUS_FILTERS)}.")] = UNRESOLVED_FILTER,
          klass: Annotated[str | None, typer.Option("--class")] = None,
          entity: Annotated[str | None, typer.Option("--entity", "-e")] = None,
          currency: Annotated[str | None, typer.Option("--currency")] = None,
          amount_min: Bound = None, amount_max: Bound = None,
          config: ConfigPath = None, as_json: Json = False) -> None:
    """The queue as the console shows it: filtered by status, class, entity, currency and
    amount, the most money at stake first (the 500 with the most)."""
    with guarded(as_json):
        loaded = load_config(config)
        who = authorised(loaded, FINANCE_READ)
        built = build_finance(loaded)
        try:
            chosen = exceptions_view.QueueFilter(
                status, klass, entity, currency, None, None,
                None if amount_min is None else to_decimal(amount_min),
                None if amount_max is None else to_decimal(amount_max))
            shown = exceptions_view.queue(build_services(loaded, built), chosen, who).as_json()
        finally:
            built.dispose()
    if as_json:
        output.emit_json(shown)
        return
    totals = ", ".join(f"{m['amount']} {m['currency']}" for m in shown["at_stake"]) or "none"
    output.table(f"{shown['count']} exception(s), the most at stake first; at stake: {totals}",
                 ["id", "class", "status", "entity", "at stake", "age", "summary"],
                 [[e["id"], e["class"], e["status"], e["entity"], e["amount_at_stake"],
                   f"{e['age_s'] // 86400} d", e["summary"][:SUMMARY_CHARS]]
                  for e in shown["exceptions"]])


def register(exceptions_app: typer.Typer) -> None:
    exceptions_app.command("queue")(queue)

    @exceptions_app.command("show")
    def show(exception_id: RowId, config: ConfigPath = None, as_json: Json = False) -> None:
        """One exception with its delivery, its actions and who took them."""
        with guarded(as_json), finance(config, FINANCE_READ) as (f, who):
            row = f.triage.show(exception_id, can_read_pii=who.can(PII_READ))
        if as_json:
            output.emit_json(row)
            return
        for key in ("id", "class", "status", "amount_at_stake", "correlation_id", "objects",
                    "age_s", "summary", "detail", "resolution_note"):
            output.console.print(f"[bold]{key}[/]: {row[key]}")
        if row["payload"] is not None:
            output.console.print("[bold]payload[/]:")
            output.console.print_json(json.dumps(row["payload"], default=str))
        output.table("actions", ["id", "action", "by", "status", "decided by", "reason"],
                     [[a["id"], a["action"], a["requested_by"], a["status"], a["decided_by"],
                       a["reason"]] for a in row["actions"]])

    def act(as_json: bool, config: Path | None, call: Any,
            scope: str = EXCEPTIONS_ACT) -> None:
        with guarded(as_json), finance(config, scope, controlled=True) as (f, who):
            outcomes = call(f, who)
            f.hub.run_until_idle()
        rows = [asdict(o) for o in (outcomes if isinstance(outcomes, list) else [outcomes])]
        if as_json:
            output.emit_json({"outcomes": rows})
            return
        for row in rows:
            output.console.print(f"#{row['exception_id']} {row['action']}: {row['status']} — "
                                 f"{row['detail']} (action {row['action_id']})")

    @exceptions_app.command("retry")
    def retry(exception_id: RowId, reason: Reason, config: ConfigPath = None,
              as_json: Json = False) -> None:
        """Send the failed delivery again now (or map the refused payload again)."""
        act(as_json, config, lambda f, who: f.triage.retry(exception_id, who, reason))

    @exceptions_app.command("replay")
    def replay(reason: Reason, klass: Annotated[str | None, typer.Option("--class")] = None,
               correlation: Annotated[str | None, typer.Option("--correlation")] = None,
               config: ConfigPath = None, as_json: Json = False) -> None:
        """Retry every unresolved exception of a class or correlation id at once."""
        act(as_json, config, lambda f, who: f.triage.replay(who, reason,
                                                       exception_class=klass,
                                                       correlation_id=correlation))

    @exceptions_app.command("reroute")
    def reroute(exception_id: RowId, reason: Reason, config: ConfigPath = None,
                as_json: Json = False) -> None:
        """Book a closed_period posting in the first open period (may need approval)."""
        act(as_json, config, lambda f, who: f.triage.reroute(exception_id, who, reason))

    @exceptions_app.command("approve")
    def approve(action_id: RowId, reason: Reason, config: ConfigPath = None,
                as_json: Json = False) -> None:
        """Approve an action someone else asked for, and carry it out."""
        act(as_json, config, lambda f, who: f.triage.approve(action_id, who, reason),
            EXCEPTIONS_APPROVE)

    @exceptions_app.command("reject")
    def reject(action_id: RowId, reason: Reason, config: ConfigPath = None,
               as_json: Json = False) -> None:
        """Reject an action someone else asked for."""
        act(as_json, config, lambda f, who: f.triage.reject(action_id, who, reason),
            EXCEPTIONS_APPROVE)

    @exceptions_app.command("resolve")
    def resolve(exception_id: RowId, reason: Reason, config: ConfigPath = None,
                as_json: Json = False) -> None:
        """Resolve with a note (the fix was made elsewhere)."""
        act(as_json, config, lambda f, who: f.triage.resolve(exception_id, who, reason))

    @exceptions_app.command("ignore")
    def ignore(exception_id: RowId, reason: Reason, config: ConfigPath = None,
               as_json: Json = False) -> None:
        """Take an exception off the queue without a fix, with a reason."""
        act(as_json, config, lambda f, who: f.triage.ignore(exception_id, who, reason))

    @exceptions_app.command("resolve-duplicate")
    def resolve_duplicate(exception_id: RowId,
                          keep: Annotated[Keep, typer.Option(
                              "--keep", help="stored: the stored event stands; received: "
                              "the received body takes its place (refused once posted).")],
                          reason: Reason, config: ConfigPath = None,
                          as_json: Json = False) -> None:
        """Choose which body of a duplicate_event stands (may need approval)."""
        act(as_json, config, lambda f, who: f.triage.resolve_duplicate(exception_id, keep,
                                                                  who, reason))

