"""`finsync tokens`: API tokens for the HTTP API (and `FINSYNC_TOKEN`), managed by an admin.

Rules:
- The acting principal is never a name typed here: it is the principal of `FINSYNC_TOKEN`
  when set, else the OS login mapped in `[auth]` (`cli.common.acting`). Every command needs `admin`.
- A token's secret is printed once, by `create` and `rotate`; `list` never shows it.
- Durations are a whole number and a unit: `90d`, `12h`, `30m`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import Engine

from finsync.auth import tokens
from finsync.auth.local import require
from finsync.auth.principal import ADMIN, Principal
from finsync.bootstrap import build_token_store
from finsync.cli import output
from finsync.cli.common import ConfigPath, Json, acting, guarded
from finsync.config import load_config
from finsync.domain.clock import utc_now

app = typer.Typer(help="API tokens: create, list, rotate, revoke, approve (admin).",
                  no_args_is_help=True)

TOKEN_ENV = "FINSYNC_TOKEN"
_DURATION = re.compile(r"(\d{1,6})([dhm])")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def duration(text: str) -> timedelta:
    """`90d`, `12h` or `30m`."""
    matched = _DURATION.fullmatch(text.strip())
    if matched is None:
        raise typer.BadParameter(f"{text!r} is not a duration: a number and d, h or m "
                                 "(e.g. 90d)")
    return timedelta(**{_UNITS[matched[2]]: int(matched[1])})


@contextmanager
def _store(config: Path | None) -> Iterator[tuple[Engine, Principal]]:
    loaded = load_config(config)
    engine = build_token_store(loaded)
    try:
        yield engine, acting(loaded)
    finally:
        engine.dispose()


def _show(token: tokens.Token, as_json: bool) -> None:
    shown = token.as_json(utc_now())
    if as_json:
        output.emit_json(shown)
        return
    output.console.print(f"{shown['id']} ({shown['name']}, {shown['principal']}): "
                         f"{shown['state']}, expires {shown['expires_at']}")


@app.command()
def create(name: Annotated[str, typer.Argument(help="What the token is for.")],
           principal: Annotated[str, typer.Option(help="The principal it stands for.")],
           scope: Annotated[list[str], typer.Option(help="A scope it holds (repeat).")],
           expires_in: Annotated[str, typer.Option(help="Lifetime: 90d, 12h, 30m.")] = "90d",
           config: ConfigPath = None, as_json: Json = False) -> None:
    """Create a token and print it, once. One with `admin` is pending until a second admin
    approves it (`finsync tokens approve ID`)."""
    with guarded(as_json):
        lifetime = duration(expires_in)
        with _store(config) as (engine, actor):
            issued = tokens.create(engine, actor, name, principal, scope, utc_now(), lifetime)
        pending = issued.token.status == tokens.PENDING
        if pending:
            output.note(f"{issued.token.id} holds admin: it works once another admin runs "
                        f"`finsync tokens approve {issued.token.id}` (within "
                        f"{tokens.APPROVAL_WINDOW})")
        if as_json:
            output.emit_json({"id": issued.token.id, "token": issued.secret})
            return
        output.console.print(f"{issued.token.id}: {issued.secret}")
        output.note("the token is shown this once: store it now")


@app.command("list")
def list_tokens(config: ConfigPath = None, as_json: Json = False) -> None:
    """Every token, without its secret: owner, scopes, state, expiry, last use."""
    with guarded(as_json), _store(config) as (engine, actor):
        require(actor, ADMIN)
        now = utc_now()
        listed = [t.as_json(now) for t in tokens.listing(engine)]
        if as_json:
            output.emit_json({"tokens": listed})
            return
        output.table("API tokens", ["id", "name", "principal", "scopes", "state", "expires",
                                    "last used"],
                     [[t["id"], t["name"], t["principal"], " ".join(t["scopes"]), t["state"],
                       t["expires_at"], t["last_used_at"]] for t in listed])


@app.command()
def rotate(token_id: Annotated[str, typer.Argument(metavar="ID")],
           overlap: Annotated[str, typer.Option(help="How long the old token keeps "
                                                "working: 24h, 7d, 0m.")] = "24h",
           config: ConfigPath = None, as_json: Json = False) -> None:
    """Issue a successor (printed once); the old token works for OVERLAP more."""
    with guarded(as_json):
        window = duration(overlap)
        with _store(config) as (engine, actor):
            issued = tokens.rotate(engine, actor, token_id, utc_now(), window)
        if as_json:
            output.emit_json({"id": issued.token.id, "token": issued.secret,
                              "replaces": token_id})
            return
        output.console.print(f"{issued.token.id}: {issued.secret}")
        output.note(f"{token_id} keeps working for {window}; the new token is shown this once")


@app.command()
def revoke(token_id: Annotated[str, typer.Argument(metavar="ID")],
           reason: Annotated[str, typer.Option(help="Why (in the audit trail).")] = "",
           config: ConfigPath = None, as_json: Json = False) -> None:
    """Stop a token now."""
    with guarded(as_json), _store(config) as (engine, actor):
        _show(tokens.revoke(engine, actor, token_id, utc_now(), reason), as_json)


@app.command()
def approve(token_id: Annotated[str, typer.Argument(metavar="ID")],
            config: ConfigPath = None, as_json: Json = False) -> None:
    """Approve a pending admin token (a second admin: not its requester, not its owner)."""
    with guarded(as_json), _store(config) as (engine, actor):
        _show(tokens.approve(engine, actor, token_id, utc_now()), as_json)
