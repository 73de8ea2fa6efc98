"""What every command shares: `--json`, `--config`, and typed errors as clean exits."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from finsync.cli import output
from finsync.domain.errors import FinsyncError

Json = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
ConfigPath = Annotated[Path | None, typer.Option("--config", "-c", help="finsync.toml to use.")]


@contextmanager
def guarded(as_json: bool) -> Iterator[None]:
    """Typed errors become a clear message (or JSON) and a non-zero exit."""
    try:
        yield
    except FinsyncError as exc:
        output.fail(str(exc), exc.code, as_json=as_json)
