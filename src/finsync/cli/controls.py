"""`finsync config …`: changes to the controlled configuration ([ownership], [routes],
[triage]) take effect once a second principal approves them (`finsync.controls.configuration`).

`show` (finance:read) compares finsync.toml with the configuration in force; `propose`
(admin) asks for the file's sections to be approved; `approve` and `reject` (admin and
exceptions:approve, another principal than the one who proposed) decide.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from finsync.auth.principal import ADMIN, FINANCE_READ, Principal
from finsync.bootstrap import build_config_control, build_engine, migrate_database
from finsync.cli import output
from finsync.cli.common import ConfigPath, Json, RowId, authorised, guarded
from finsync.config import FinsyncConfig, load_config
from finsync.controls.configuration import ConfigControl
from finsync.controls.request import Request

app = typer.Typer(help="Changes to the controlled configuration: propose, approve, show.",
                  no_args_is_help=True)

Note = Annotated[str, typer.Option("--note", "--reason", help="Why (recorded in the audit "
                                                            "trail).")]


@contextmanager
def _control(config: Path | None,
             scope: str) -> Iterator[tuple[ConfigControl, FinsyncConfig, Principal]]:
    loaded = load_config(config)
    principal = authorised(loaded, scope)
    migrate_database(loaded)
    engine = build_engine(loaded)
    try:
        yield build_config_control(loaded, engine), loaded, principal
    finally:
        engine.dispose()


@app.command()
def show(config: ConfigPath = None, as_json: Json = False) -> None:
    """The fingerprint of finsync.toml's controlled sections beside the one in force, the
    sections that differ and the proposals waiting for approval."""
    with guarded(as_json), _control(config, FINANCE_READ) as (control, loaded, _who):
        shown = control.show(loaded)
    if as_json:
        output.emit_json(shown)
        return
    in_force = shown["in_force"]
    output.console.print(f"finsync.toml: {shown['fingerprint']}")
    output.console.print("in force: " + (f"{in_force['fingerprint']} (by "
                                         f"{in_force['adopted_by']}, {in_force['adopted_at']})"
                                         if in_force else "none yet"))
    if shown["approved"]:
        output.console.print("approved: yes")
    else:
        output.console.print(f"approved: no; changed: {', '.join(shown['changed'])}")
    for request in shown["pending"]:
        output.console.print(f"proposal {request['id']} of {request['subject'][:12]} by "
                             f"{request['requested_by']}, expires {request['expires_at']}")


@app.command()
def propose(reason: Note, config: ConfigPath = None, as_json: Json = False) -> None:
    """Propose finsync.toml's controlled sections for approval by a second principal."""
    with guarded(as_json), _control(config, ADMIN) as (control, loaded, who):
        proposed = control.propose(who, loaded, reason)
    _print(proposed, as_json, f"a second principal approves it: `finsync config approve "
                              f"{proposed.id} --note ...`")


@app.command()
def approve(request_id: RowId, note: Note, config: ConfigPath = None,
            as_json: Json = False) -> None:
    """Approve another principal's proposal: its sections are in force from now on."""
    with guarded(as_json), _control(config, ADMIN) as (control, _loaded, who):
        decided = control.decide(who, request_id, note, approve=True)
    _print(decided, as_json, "in force")


@app.command()
def reject(request_id: RowId, note: Note, config: ConfigPath = None,
           as_json: Json = False) -> None:
    """Reject another principal's proposal."""
    with guarded(as_json), _control(config, ADMIN) as (control, _loaded, who):
        decided = control.decide(who, request_id, note, approve=False)
    _print(decided, as_json, "not in force")


def _print(request: Request, as_json: bool, message: str) -> None:
    if as_json:
        output.emit_json(request.as_json())
    else:
        output.console.print(f"proposal {request.id} ({request.subject[:12]}): "
                             f"{request.status.value}; {message}")
