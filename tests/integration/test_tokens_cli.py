"""`finsync tokens` as an operator uses it: the acting principal is the mapped OS login or
FINSYNC_TOKEN's principal, never a typed name; the secret is printed once."""

from __future__ import annotations

import getpass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from finsync.audit.tables import trail
from finsync.auth import tokens
from finsync.auth.principal import FINANCE_READ
from finsync.cli.main import app
from finsync.cli.tokens import duration
from finsync.domain.clock import utc_now
from finsync.storage.db import make_engine, reading
from tests.clikit import cli_json, runner

AUTH = """
[auth.principals.alice]
scopes = ["admin"]

[auth.principals.bob]
scopes = ["admin"]

[auth.principals.clerk]
scopes = ["finance:read"]

[auth.os_users]
"{login}" = "{principal}"
"""


def _configure(directory: Path, principal: str) -> None:
    """finsync.toml with [auth], the current login mapped to `principal`."""
    target = directory / "finsync.toml"
    base = target.read_text().split("\n[auth", 1)[0]
    target.write_text(base + AUTH.replace("{login}", getpass.getuser())
                      .replace("{principal}", principal))


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FINSYNC_DATABASE_URL", db_url)
    monkeypatch.delenv("FINSYNC_TOKEN", raising=False)
    cli_json(["init"])
    _configure(tmp_path, "alice")
    return tmp_path


def test_create_list_rotate_revoke(workdir: Path, db_url: str,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    made = cli_json(["tokens", "create", "reporting", "--principal", "Reporting",
                     "--scope", FINANCE_READ, "--expires-in", "30d"])
    assert set(made) == {"id", "token"} and made["token"].startswith("fsk_")
    [listed] = cli_json(["tokens", "list"])["tokens"]
    assert (listed["id"], listed["principal"], listed["scopes"], listed["state"]) == (
        made["id"], "reporting", [FINANCE_READ], "active")
    assert made["token"] not in runner.invoke(app, ["tokens", "list"]).output
    engine = make_engine(db_url)
    try:
        assert tokens.principal_for(engine, made["token"], utc_now()).id == "reporting"
        rotated = cli_json(["tokens", "rotate", made["id"], "--overlap", "0m"])
        assert rotated["replaces"] == made["id"]
        assert tokens.principal_for(engine, rotated["token"], utc_now()).id == "reporting"
        with pytest.raises(tokens.NotAuthenticatedError):  # no overlap: gone at once
            tokens.principal_for(engine, made["token"], utc_now())
        revoked = cli_json(["tokens", "revoke", rotated["id"], "--reason", "leaked"])
        assert revoked["state"] == "revoked"
        with reading(engine) as conn:
            actions = conn.execute(select(trail.c.actor, trail.c.action)
                                   .where(trail.c.object_type == "token")
                                   .order_by(trail.c.seq)).all()
    finally:
        engine.dispose()
    assert [tuple(a) for a in actions] == [
        ("alice", "token.create"), ("alice", "token.rotate"), ("alice", "token.create"),
        ("alice", "token.revoke")]


def test_an_admin_token_needs_a_second_admin(workdir: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Alice asks and cannot approve; bob's token without admin cannot; bob can. (The same
    person spelt otherwise: tests/integration/test_tokens.py.)"""
    asked = cli_json(["tokens", "create", "ops", "--principal", "ops", "--scope", "admin"])
    refused = cli_json(["tokens", "approve", asked["id"]], code=1)
    assert refused["error"]["code"] == "same_person"
    bob = cli_json(["tokens", "create", "bob", "--principal", "bob", "--scope",
                    FINANCE_READ])  # not admin: bob's token cannot approve
    monkeypatch.setenv("FINSYNC_TOKEN", bob["token"])
    assert cli_json(["tokens", "approve", asked["id"]], code=1)["error"]["code"] == "forbidden"
    monkeypatch.delenv("FINSYNC_TOKEN")
    _configure(workdir, "bob")
    approved = cli_json(["tokens", "approve", asked["id"]])
    assert (approved["state"], approved["approved_by"]) == ("active", "bob")
    monkeypatch.setenv("FINSYNC_TOKEN", asked["token"])  # ops now acts by its token
    assert cli_json(["tokens", "list"])["tokens"][0]["id"] == asked["id"]


def test_an_unmapped_login_or_a_bad_token_is_not_authenticated(
        workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _configure(workdir, "clerk")
    forbidden = cli_json(["tokens", "create", "x", "--principal", "x", "--scope",
                          FINANCE_READ], code=1)
    assert forbidden["error"]["code"] == "forbidden"
    assert cli_json(["tokens", "list"], code=1)["error"]["code"] == "forbidden"
    monkeypatch.setenv("FINSYNC_TOKEN", "fsk_" + "A" * 43)
    assert cli_json(["tokens", "list"], code=1)["error"]["code"] == "not_authenticated"
    bad = cli_json(["tokens", "create", "x", "--principal", "x", "--scope", "finance:reed"],
                   code=1)
    assert bad["error"]["code"] == "not_authenticated"  # who acts is checked first


def test_durations() -> None:
    assert duration("90d") == timedelta(days=90)
    assert duration("12h") == timedelta(hours=12)
    assert duration("0m") == timedelta(0)
    for text in ("90", "d", "1.5d", "-1d", "9999999d"):
        with pytest.raises(Exception, match="not a duration"):
            duration(text)
