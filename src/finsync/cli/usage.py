"""`finsync usage`: meter events from a file, and their totals handed to billing."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from finsync.auth.principal import ADMIN, events_write
from finsync.bootstrap import build_usage
from finsync.cli import output
from finsync.cli.common import ConfigPath, Json, authorised, guarded
from finsync.config import load_config
from finsync.domain.clock import parse_date
from finsync.hub.usage import UsageIntake

app = typer.Typer(help="Usage at volume: meter events, totals per subscription, product "
                       "and billing period, handed to billing.", no_args_is_help=True)

REFUSED_SHOWN = 20


@contextmanager
def _usage(config: Path | None, scope: str) -> Iterator[UsageIntake]:
    loaded = load_config(config)
    authorised(loaded, scope)
    usage = build_usage(loaded)
    try:
        yield usage
    finally:
        usage.engine.dispose()


def _lines(file: Path) -> Iterator[str]:
    if str(file) == "-":
        yield from sys.stdin
        return
    with file.open(encoding="utf-8", errors="surrogateescape") as lines:
        yield from lines


@app.command()
def load(file: Annotated[Path, typer.Argument(help="Meter events as JSON lines; '-' reads "
                                              "stdin.")],
         source: Annotated[str, typer.Option(help="The usage source ([usage] sources).")]
         = "metering",
         config: ConfigPath = None, as_json: Json = False) -> None:
    """Store FILE's meter events durably (de-duplicated by event id); refused lines are
    listed with their line index and code, the others are kept."""
    with guarded(as_json), _usage(config, events_write(source)) as usage:
        if not usage.knows(source):
            output.fail(f"unknown usage source {source!r}; configured: see [usage] sources",
                        "unknown_source", as_json=as_json)
        if str(file) != "-" and not file.exists():
            output.fail(f"no such file: {file}", "file_not_found", as_json=as_json)
        receipt = usage.load(source, _lines(file))
        if as_json:
            output.emit_json({"source": source, **receipt.as_json()})
            return
        output.console.print(f"stored {receipt.stored} meter events from {file} as {source}; "
                             f"{receipt.duplicates} duplicates, {len(receipt.refused)} refused")
        if receipt.refused:
            output.table("refused", ["line", "event id", "code", "why"],
                         [[r.index + 1, r.event_id or "", r.code, r.message]
                          for r in receipt.refused[:REFUSED_SHOWN]])


@app.command()
def aggregate(through: Annotated[str | None, typer.Option(
                  help="Total the billing periods ended by this date (default: those "
                       "that ended [usage] settle_s ago).")] = None,
              config: ConfigPath = None, as_json: Json = False) -> None:
    """Total meter events per subscription, product and billing period, and hand each total
    to billing as one usage record."""
    with guarded(as_json), _usage(config, ADMIN) as usage:
        run = usage.aggregate(parse_date(through) if through else None)
        handed = usage.hand_over()
        result = {"run": run.run_id, "through": run.through_day.isoformat(),
                  "events": run.events, "totals": run.totals, "recorded": handed.recorded,
                  "refused": handed.refused, "waiting": handed.waiting}
        if as_json:
            output.emit_json(result)
            return
        output.console.print(f"run {run.run_id}: {run.events} meter events of periods "
                             f"ended by {run.through_day} in {run.totals} totals; billing recorded "
                             f"{handed.recorded}, refused {handed.refused} (see `finsync "
                             f"exceptions list`), {handed.waiting} waiting")
