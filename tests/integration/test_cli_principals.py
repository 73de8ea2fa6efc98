"""The CLI acts as a principal, never as a typed name: `finsync init` maps the current login,
a login the configuration does not map is refused, each command checks its scope, a set
FINSYNC_TOKEN is never ignored, and a changed controlled configuration is refused by `run`
until a second principal approves it (`finsync config propose|approve|show`)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from sqlalchemy import select

from finsync.audit.tables import trail
from finsync.auth.principal import normalise
from finsync.cli.common import os_login
from finsync.cli.main import OPERATOR_SCOPES, auth_section
from finsync.cli.main import app as cli_app
from finsync.config import DEFAULT_CONFIG, parse_config
from finsync.storage.db import make_engine, reading
from tests.clikit import add_person, cli_json, login_as, runner

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "reference-workflow.jsonl"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FINSYNC_DATABASE_URL", db_url)
    monkeypatch.delenv("FINSYNC_CONFIG", raising=False)
    monkeypatch.delenv("FINSYNC_TOKEN", raising=False)
    cli_json(["init"])
    return tmp_path


def test_init_maps_the_current_login_to_an_operator(workdir: Path) -> None:
    auth = tomllib.loads((workdir / "finsync.toml").read_text())["auth"]
    principal = normalise(os_login())
    assert auth["os_users"] == {os_login(): principal}
    assert auth["principals"][principal]["scopes"] == list(OPERATOR_SCOPES)
    assert "exceptions:approve" not in OPERATOR_SCOPES  # approving is a second person's
    assert cli_json(["status"])["raw_events"] == {}


def test_a_login_nobody_mapped_is_not_authenticated(workdir: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    login_as(monkeypatch, "mallory")
    error = cli_json(["status"], code=1)["error"]
    assert error["code"] == "not_authenticated" and "'mallory'" in error["message"]


def test_the_free_text_actor_options_are_gone(workdir: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINSYNC_USER", "controller")  # ignored: it names nobody
    for args in (["exceptions", "approve", "1", "--note", "x", "--as", "controller"],
                 ["ledger", "close", "-e", "le_us", "-p", "2026-01", "--by", "controller"]):
        result = runner.invoke(cli_app, args)
        assert result.exit_code == 2 and "No such option" in result.output
    error = cli_json(["exceptions", "approve", "1", "--note", "x"], code=1)["error"]
    assert error["code"] == "forbidden" and "exceptions:approve" in error["message"]


def test_a_set_token_narrows_and_never_falls_back_to_the_login(
        workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reader = cli_json(["tokens", "create", "reader", "--principal", "dashboard",
                       "--scope", "finance:read"])
    monkeypatch.setenv("FINSYNC_TOKEN", reader["token"])
    assert "deliveries" in cli_json(["status"])  # acts as the token's principal
    error = cli_json(["replay", "--all", "--reason", "x"], code=1)["error"]
    assert error["code"] == "forbidden" and error["message"].startswith("dashboard ")
    monkeypatch.setenv("FINSYNC_TOKEN", "fsk_not_a_token_here")
    error = cli_json(["status"], code=1)["error"]
    assert error["code"] == "not_authenticated"  # not the mapped login's scopes instead
    assert "fsk_not_a_token_here" not in error["message"]


def test_each_command_checks_its_scope(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    add_person(workdir / "finsync.toml", "auditor", "auditor", ["finance:read", "audit:read"])
    login_as(monkeypatch, "auditor")
    assert cli_json(["exceptions", "list"])["count"] == 0  # reading is allowed
    refused = {
        "ingest": (["ingest", str(EXAMPLE)], "events:write:canonical"),
        "run": (["run", "--no-wait"], "admin"),
        "replay": (["replay", "--all", "--reason", "x"], "exceptions:act"),
        "close": (["close", "-e", "le_us", "-p", "2026-01"], "periods:manage"),
        "ledger close": (["ledger", "close", "-e", "le_us", "-p", "2026-01"],
                         "periods:manage"),
        "retry": (["exceptions", "retry", "1", "--reason", "x"], "exceptions:act"),
        "config propose": (["config", "propose", "--reason", "x"], "admin"),
        "db upgrade": (["db", "upgrade"], "admin"),
    }
    for name, (args, scope) in refused.items():
        error = cli_json(args, code=1)["error"]
        assert (error["code"], scope in error["message"]) == ("forbidden", True), name
    assert cli_json(["status"])["raw_events"] == {}  # nothing was stored


def test_a_changed_threshold_needs_a_second_principal_before_run(
        workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = workdir / "finsync.toml"
    cli_json(["ingest", str(EXAMPLE)])
    assert cli_json(["run", "--no-wait"])["run"]["raw_processed"] > 0
    config.write_text(config.read_text().replace('approval_threshold = "1000.00"',
                                                 'approval_threshold = "900000.00"'))
    error = cli_json(["run", "--no-wait"], code=1)["error"]
    assert error["code"] == "config_not_approved"
    assert "triage" in error["message"] and "finsync config propose" in error["message"]
    shown = cli_json(["config", "show"])
    assert (shown["approved"], shown["changed"]) == (False, ["triage"])
    proposal = cli_json(["config", "propose", "--reason", "materiality review"])
    assert proposal["status"] == "pending"
    assert f"config approve {proposal['id']}" in cli_json(["run", "--no-wait"],
                                                          code=1)["error"]["message"]
    mine = cli_json(["config", "approve", str(proposal["id"]), "--note", "ok"], code=1)
    assert mine["error"]["code"] == "same_person"
    add_person(config, "controller", "controller", ["admin"])
    login_as(monkeypatch, "controller")
    lacking = cli_json(["config", "approve", str(proposal["id"]), "--note", "ok"], code=1)
    assert lacking["error"]["code"] == "forbidden"
    assert "exceptions:approve" in lacking["error"]["message"]
    config.write_text(config.read_text().replace('scopes = ["admin"]',
                                                 'scopes = ["admin", "exceptions:approve"]'))
    login_as(monkeypatch, "controller")
    approved = cli_json(["config", "approve", str(proposal["id"]), "--note", "agreed"])
    assert (approved["status"], approved["decided_by"]) == ("approved", "controller")
    login_as(monkeypatch, os_login())  # the operator again: the run goes on
    assert cli_json(["config", "show"])["approved"] is True
    assert "run" in cli_json(["run", "--no-wait"])


def test_a_replay_is_audited_as_its_principal(workdir: Path, db_url: str) -> None:
    cli_json(["ingest", str(EXAMPLE)])
    cli_json(["run", "--no-wait"])
    assert cli_json(["replay", "--all"], code=2)["error"]["code"] == "reason_required"
    cli_json(["replay", "--all", "--reason", "books check after the ERP outage"])
    engine = make_engine(db_url)
    try:
        with reading(engine) as conn:
            rows = conn.execute(select(trail.c.actor, trail.c.action, trail.c.object_id,
                                       trail.c.reason).order_by(trail.c.seq)).all()
    finally:
        engine.dispose()
    me = normalise(os_login())
    assert rows[0] == ("system:controls", "config.adopt", rows[0][2],
                       "the first configuration this database saw")  # by `init`
    assert [tuple(r) for r in rows if r[1] == "replay.run"] == [
        (me, "replay.run", "all", "books check after the ERP outage")]


@pytest.mark.parametrize("login", ["jane", "Jane.Doe", 'o"brien', "back\\slash", "émile",
                                   "has space"])
def test_the_init_section_maps_any_login(login: str, tmp_path: Path) -> None:
    text = DEFAULT_CONFIG.read_text() + auth_section(login)
    config = parse_config(tomllib.loads(text), tmp_path)
    principal = config.auth.os_users[login]
    assert principal in config.auth.principals  # `operator` when no id can be made of it
    assert principal == ("operator" if login in ("émile", "has space", 'o"brien', "back\\slash")
                         else login.casefold())
