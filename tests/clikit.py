"""Running the CLI in-process, as a person types it, with `--json`."""

from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner

from finsync.cli.main import app

runner = CliRunner()


def cli_json(args: list[str], code: int = 0) -> Any:
    """The one JSON object a command prints with `--json`; its exit code must be `code`."""
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)
