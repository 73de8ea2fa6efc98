"""Printing: one JSON object with `--json`, Rich tables otherwise; errors to stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from finsync.domain.money import Money
from finsync.domain.secret import mask_secrets

console = Console()
errors = Console(stderr=True)


def duration(seconds: float) -> str:
    """`1h05m` or `4m07s`: a wait or an age as an operator reads it (whole seconds)."""
    hours, rest = divmod(max(0, round(seconds)), 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def fail(message: str, code: str, *, as_json: bool, exit_code: int = 1) -> NoReturn:
    message = mask_secrets(message)  # an error may quote what it was given: never a secret
    if as_json:
        emit_json({"error": {"code": code, "message": message}})
    else:
        errors.print(f"[bold red]error[/] ({code}): {escape(message)}")
    raise typer.Exit(exit_code)


def note(message: str) -> None:
    """Something a person should know that is not the command's result (on stderr)."""
    errors.print(f"[yellow]note[/]: {escape(message)}")


def money(amounts: Mapping[str, Money]) -> str:
    """Amounts per currency as a person reads them: `37,808.22 USD, 120.00 EUR`."""
    if not amounts:
        return "-"
    return ", ".join(f"{m.amount:,} {m.currency}" for _, m in sorted(amounts.items()))


def table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    view = Table(title=title, title_justify="left")
    for column in columns:
        view.add_column(column)
    for row in rows:
        view.add_row(*("" if v is None else str(v) for v in row))
    console.print(view)


def counts_table(title: str, counts: Mapping[str, Any]) -> None:
    table(title, ["", "count"], [[k, v] for k, v in sorted(counts.items())])


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Any]:
    """A Rich progress bar (on stderr) whose `update(stage, done, total)` drives it."""
    if not enabled:
        yield lambda stage, done, total: None
        return
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), console=errors, transient=False)
    tasks: dict[str, Any] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done, total=max(total, done))

    with bar:
        yield update
