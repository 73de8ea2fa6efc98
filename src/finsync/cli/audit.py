"""`finsync audit …`: verify the trail, sign its head, export an evidence pack, make a key."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from finsync.audit.service import AuditTrail
from finsync.audit.signing import write_new_key
from finsync.audit.verify import Verdict
from finsync.auth.principal import ADMIN, AUDIT_READ
from finsync.bootstrap import open_audit
from finsync.cli import output
from finsync.cli.common import ConfigPath, Json, authorised, guarded
from finsync.config import load_config

app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True)

VERIFY_FAILED_EXIT = 4  # code `audit_verify_failed` (docs/security.md)


@contextmanager
def _trail(config: Path | None, scope: str) -> Iterator[AuditTrail]:
    """The audit trail, for a principal holding `scope`."""
    loaded = load_config(config)
    authorised(loaded, scope)
    trail = open_audit(loaded)
    try:
        yield trail
    finally:
        trail.engine.dispose()


def _day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{option}: not an ISO date: {text!r}") from None


@app.command()
def verify(config: ConfigPath = None, as_json: Json = False) -> None:
    """Walk the chain, check every signed checkpoint and the legacy logs' coverage; name the
    first record edited, deleted, inserted or reordered. Exits 4 when anything is found."""
    with guarded(as_json), _trail(config, AUDIT_READ) as trail:
        verdict = trail.verify()
    message = _failure(verdict)
    if as_json:
        error = {"error": {"code": "audit_verify_failed", "message": message}}
        output.emit_json({**verdict.as_json(), **({} if verdict.ok else error)})
        if not verdict.ok:
            raise typer.Exit(VERIFY_FAILED_EXIT)
        return
    _render(verdict)
    if not verdict.ok:
        output.fail(message, "audit_verify_failed", as_json=False, exit_code=VERIFY_FAILED_EXIT)


def _failure(verdict: Verdict) -> str:
    found = []
    if verdict.tamper is not None:
        found.append(f"record {verdict.tamper.seq} {verdict.tamper.kind.value}")
    found += [f"checkpoint {p.checkpoint_id} {p.kind}" for p in verdict.checkpoint_problems]
    if verdict.uncovered_count:
        found.append(f"{verdict.uncovered_count} legacy log row(s) not covered by the trail")
    return "the audit trail does not verify: " + "; ".join(found)


def _render(verdict: Verdict) -> None:
    output.console.print(f"{verdict.records} record(s), head seq {verdict.head_seq} "
                         f"({verdict.head_hash[:16]}…)")
    if verdict.tamper is not None:
        output.console.print(f"[red]{verdict.tamper.kind.value}[/] record "
                             f"{verdict.tamper.seq}: {escape(verdict.tamper.message)}")
    for problem in verdict.checkpoint_problems:
        output.console.print(f"[red]{problem.kind}[/]: {escape(problem.message)}")
    for item in verdict.uncovered:
        output.console.print(f"[red]uncovered[/] {item.log} row {item.row_id}: "
                             f"{escape(item.message)}")
    if verdict.checkpoints:
        last = verdict.checkpoints[-1]
        output.console.print(f"{len(verdict.checkpoints)} checkpoint(s); the last signs seq "
                             f"{last.seq} ({escape(last.reason)}); {verdict.unsigned_records} "
                             "record(s) after it")
    else:
        output.note("no signed checkpoint yet: configure [audit] signing_key_file or "
                    "signing_key_env, then `finsync audit checkpoint`")
    if verdict.ok:
        output.console.print("verified")


@app.command()
def checkpoint(reason: Annotated[str, typer.Option(help="Recorded with the checkpoint.")]
               = "manual", config: ConfigPath = None, as_json: Json = False) -> None:
    """Sign the trail's head now (the daily job and each `finsync close` do it too)."""
    with guarded(as_json), _trail(config, ADMIN) as trail:
        signed = trail.checkpoint(reason)
    if as_json:
        output.emit_json(signed.as_json())
    else:
        output.console.print(f"signed seq {signed.seq} ({signed.hash[:16]}…) with key "
                             f"{signed.public_key}", soft_wrap=True)


@app.command()
def export(directory: Annotated[Path, typer.Argument(help="An empty or new folder.")],
           start: Annotated[str, typer.Option("--from", help="First UTC day (ISO date).")],
           end: Annotated[str, typer.Option("--to", help="Last UTC day (ISO date), included.")],
           config: ConfigPath = None, as_json: Json = False) -> None:
    """Write an evidence pack an auditor verifies without finsync: records, checkpoints,
    public keys, README and verify.py (Python's standard library only)."""
    with guarded(as_json), _trail(config, AUDIT_READ) as trail:
        pack = trail.export(_day(start, "--from"), _day(end, "--to"), directory)
    if as_json:
        output.emit_json(pack.as_json())
    else:
        output.console.print(f"wrote {pack.records} record(s) (seq {pack.first_seq} to "
                             f"{pack.last_seq}) and {pack.checkpoints} checkpoint(s) to "
                             f"{escape(str(directory))}; check it with `python3 "
                             f"{escape(str(directory))}/verify.py`", soft_wrap=True)


@app.command()
def adopt(config: ConfigPath = None, as_json: Json = False) -> None:
    """Once, after upgrading a database that has history: record the triage actions and
    period changes written before the audit trail existed, so that verify covers them."""
    with guarded(as_json), _trail(config, ADMIN) as trail:
        adopted = trail.adopt()
    if as_json:
        output.emit_json({"adopted": adopted})
    else:
        output.console.print(f"adopted {adopted['triage_actions']} triage action(s) and "
                             f"{adopted['ledger_period_log']} period change(s)")


@app.command()
def keygen(file: Annotated[Path, typer.Argument(help="Where to write the private key (a new "
                                                "file, readable by its owner only).")],
           as_json: Json = False) -> None:
    """Make an Ed25519 signing key; name FILE in [audit] signing_key_file."""
    with guarded(as_json):
        public = write_new_key(file)
    if as_json:
        output.emit_json({"file": str(file), "public_key": public})
    else:
        output.console.print(escape(f"wrote {file}; public key {public}\nin finsync.toml:\n"
                                    f"[audit]\nsigning_key_file = \"{file}\""), soft_wrap=True)
