"""Finance's commands: period close, reconciliation, metrics and the exception queue's
actions. Every action names who does it (`--as`, default $FINSYNC_USER or the login)."""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from finsync.bootstrap import Finance, build_finance, build_metrics
from finsync.cli import output
from finsync.cli.common import ConfigPath, Json, guarded
from finsync.config import load_config
from finsync.domain.clock import parse_date

Actor = Annotated[str | None, typer.Option("--as", help="Who acts (default: $FINSYNC_USER "
                                                          "or the login name).")]
Reason = Annotated[str, typer.Option("--reason", "--note", help="Why (recorded).")]


def actor(name: str | None) -> str:
    return name or os.environ.get("FINSYNC_USER") or getpass.getuser()


@contextmanager
def finance(config: Path | None) -> Iterator[Finance]:
    built = build_finance(load_config(config))
    try:
        yield built
    finally:
        built.hub.engine.dispose()


def close(entity: Annotated[str, typer.Option("--entity", "-e")],
          period: Annotated[str, typer.Option("--period", "-p", help="YYYY-MM")],
          who: Actor = None, config: ConfigPath = None, as_json: Json = False) -> None:
    """Close a month: check the cut-off, post the revenue journals, close the ERP period."""
    with guarded(as_json), finance(config) as f:
        result = f.close.close(entity, period, actor(who))
    body = {"legal_entity": result.legal_entity, "period": result.period,
            "status": result.status, "journals": [j.id for j in result.journals]}
    if as_json:
        output.emit_json(body)
    else:
        output.console.print(f"{entity} {period}: {result.status} "
                             f"({len(result.journals)} revenue journal(s) posted)")


def reconcile(as_of: Annotated[str, typer.Option("--as-of", help="ISO date.")],
              config: ConfigPath = None, as_json: Json = False) -> None:
    """Run the six reconciliation checks for every entity as of a date."""
    with guarded(as_json), finance(config) as f:
        report = f.recon.run(parse_date(as_of))
    checks = [c.as_dict() for c in report.checks]
    totals = {k: str(v.amount) for k, v in report.total_variance().items()}
    if as_json:
        output.emit_json({"as_of": as_of, "checks": checks, "total_variance": totals})
        return
    output.table(f"reconciliation as of {as_of}", ["check", "entity", "items", "breaks",
                                                   "variance"],
                 [[c["name"], c["legal_entity"], c["items"], len(c["breaks"]),
                   f"{c['variance']} {c['currency']}"] for c in checks])
    for check in checks:
        for item in check["breaks"]:
            output.console.print(f"[red]break[/] {check['name']} {item['ref']}: "
                                 f"{item['cause']} ({item['variance']} {item['currency']})"
                                 f"{' — ' + item['explained_by'] if item['explained_by'] else ''}")


def metrics(config: ConfigPath = None) -> None:
    """The metrics of DESIGN §7 in the Prometheus text format."""
    with guarded(False), finance(config) as f:
        text = build_metrics(f)()
    typer.echo(text, nl=False)


def register(exceptions_app: typer.Typer) -> None:
    @exceptions_app.command("show")
    def show(exception_id: int, config: ConfigPath = None, as_json: Json = False) -> None:
        """One exception with its delivery, its actions and who took them."""
        with guarded(as_json), finance(config) as f:
            row = f.triage.show(exception_id)
        if as_json:
            output.emit_json(row)
            return
        for key in ("id", "class", "status", "amount_at_stake", "correlation_id", "objects",
                    "age_s", "summary", "resolution_note"):
            output.console.print(f"[bold]{key}[/]: {row[key]}")
        output.table("actions", ["id", "action", "by", "status", "decided by", "reason"],
                     [[a["id"], a["action"], a["requested_by"], a["status"], a["decided_by"],
                       a["reason"]] for a in row["actions"]])

    def act(as_json: bool, config: Path | None, call: Any) -> None:
        with guarded(as_json), finance(config) as f:
            outcomes = call(f)
            f.hub.run_until_idle()
        rows = [asdict(o) for o in (outcomes if isinstance(outcomes, list) else [outcomes])]
        if as_json:
            output.emit_json({"outcomes": rows})
            return
        for row in rows:
            output.console.print(f"#{row['exception_id']} {row['action']}: {row['status']} — "
                                 f"{row['detail']} (action {row['action_id']})")

    @exceptions_app.command("retry")
    def retry(exception_id: int, reason: Reason, who: Actor = None, config: ConfigPath = None,
              as_json: Json = False) -> None:
        """Send the failed delivery again now (or map the refused payload again)."""
        act(as_json, config, lambda f: f.triage.retry(exception_id, actor(who), reason))

    @exceptions_app.command("replay")
    def replay(reason: Reason, klass: Annotated[str | None, typer.Option("--class")] = None,
               correlation: Annotated[str | None, typer.Option("--correlation")] = None,
               who: Actor = None, config: ConfigPath = None, as_json: Json = False) -> None:
        """Retry every unresolved exception of a class or correlation id at once."""
        act(as_json, config, lambda f: f.triage.replay(actor(who), reason,
                                                       exception_class=klass,
                                                       correlation_id=correlation))

    @exceptions_app.command("reroute")
    def reroute(exception_id: int, reason: Reason, who: Actor = None,
                config: ConfigPath = None, as_json: Json = False) -> None:
        """Book a closed_period posting in the first open period (may need approval)."""
        act(as_json, config, lambda f: f.triage.reroute(exception_id, actor(who), reason))

    @exceptions_app.command("approve")
    def approve(action_id: int, reason: Reason, who: Actor = None, config: ConfigPath = None,
                as_json: Json = False) -> None:
        """Approve an action someone else asked for, and carry it out."""
        act(as_json, config, lambda f: f.triage.approve(action_id, actor(who), reason))

    @exceptions_app.command("reject")
    def reject(action_id: int, reason: Reason, who: Actor = None, config: ConfigPath = None,
               as_json: Json = False) -> None:
        """Reject an action someone else asked for."""
        act(as_json, config, lambda f: f.triage.reject(action_id, actor(who), reason))

    @exceptions_app.command("resolve")
    def resolve(exception_id: int, reason: Reason, who: Actor = None,
                config: ConfigPath = None, as_json: Json = False) -> None:
        """Resolve with a note (the fix was made elsewhere)."""
        act(as_json, config, lambda f: f.triage.resolve(exception_id, actor(who), reason))

    @exceptions_app.command("ignore")
    def ignore(exception_id: int, reason: Reason, who: Actor = None, config: ConfigPath = None,
               as_json: Json = False) -> None:
        """Take an exception off the queue without a fix, with a reason."""
        act(as_json, config, lambda f: f.triage.ignore(exception_id, actor(who), reason))

