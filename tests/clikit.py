"""Running the CLI in-process, as a person types it, with `--json`, as an authenticated
principal: the CLI acts as the OS login mapped under `[auth.os_users]`, so a test writes an
`[auth]` section (`with_auth`) and, to act as someone else, changes the login the CLI sees
(`login_as`), the way a second person would log in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from finsync.auth.principal import FIXED_SCOPES, events_write
from finsync.cli import common
from finsync.cli.main import app
from finsync.config import DEFAULT_CONFIG

runner = CliRunner()

OPERATOR = "operator"  # every scope: what a test that is not about scopes acts as
# Logins and the principals they act as in `with_auth`: an AR clerk who asks, a controller
# who approves (and may reopen periods and change configuration), an auditor who only reads.
CLERK, CONTROLLER, AUDITOR = "clerk", "controller", "auditor"
PEOPLE = {
    OPERATOR: [*sorted(FIXED_SCOPES), events_write("*")],
    "ar.clerk": ["finance:read", "exceptions:act", "periods:manage"],
    "controller": ["finance:read", "exceptions:act", "exceptions:approve", "periods:manage",
                   "admin"],
    "auditor": ["finance:read", "audit:read"],
}
LOGINS = {CLERK: "ar.clerk", CONTROLLER: "controller", AUDITOR: "auditor"}


def auth_section(login: str | None = None) -> str:
    """`[auth]` with the principals above; the current OS login (or `login`) acts as the
    operator."""
    lines = []
    for name, scopes in PEOPLE.items():
        lines += [f'[auth.principals."{name}"]', f"scopes = {json.dumps(scopes)}", ""]
    lines.append("[auth.os_users]")
    lines.append(f"{json.dumps(login or common.os_login())} = \"{OPERATOR}\"")
    lines += [f'{json.dumps(k)} = "{v}"' for k, v in LOGINS.items()]
    return "\n".join(lines) + "\n"


def with_auth(text: str | None = None) -> str:
    """A configuration (the shipped one by default) with `auth_section`."""
    return (DEFAULT_CONFIG.read_text() if text is None else text) + "\n" + auth_section()


def login_as(monkeypatch: pytest.MonkeyPatch, login: str) -> None:
    """From now on the CLI sees `login` as the OS user it runs as."""
    monkeypatch.setattr(common, "os_login", lambda: login)


def cli_json(args: list[str], code: int = 0) -> Any:
    """The one JSON object a command prints with `--json`; its exit code must be `code`."""
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


def add_person(config: Path, login: str, principal: str, scopes: list[str]) -> None:
    """Map one more OS login to a principal of its own in a finsync.toml that has an
    `[auth.os_users]` table (the one `finsync init` writes)."""
    lines = config.read_text().splitlines()
    at = lines.index("[auth.os_users]") + 1
    lines.insert(at, f"{json.dumps(login)} = {json.dumps(principal)}")
    lines += ["", f"[auth.principals.{json.dumps(principal)}]", f"scopes = {json.dumps(scopes)}"]
    config.write_text("\n".join(lines) + "\n")
