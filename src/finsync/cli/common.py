"""What every command shares: `--json`, `--config`, and every error as a coded exit.

Rules:
- Every way a command can fail ends in `output.fail`: a message, a machine-readable code
  (JSON on stdout with `--json`) and a non-zero exit; never a bare traceback.
- Typed errors keep their own code. What the libraries raise is named here: an unreachable
  database is `storage_unavailable` (the code storage itself and the HTTP API use), a missing
  file or folder `file_not_found` / `directory_not_found`, a bad option `invalid_argument`
  (exit 2). Anything else is a defect: `internal_error`, with its traceback on stderr.
- Notices (the built-in defaults in use, for one) go to stderr, so `--json` stays one object.
- Every command acts as a principal (`acting`), never as a name typed on the command line:
  the owner of `FINSYNC_TOKEN` when it is set, else the OS login mapped under
  `[auth.os_users]`. Each command names the scope it needs (`authorised`); without it the
  command is refused (`forbidden`) before it touches anything.
"""

from __future__ import annotations

import errno
import getpass
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.markup import escape
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from finsync.auth.local import mapped_principal, require
from finsync.auth.principal import Principal
from finsync.auth.tokens import principal_for
from finsync.bootstrap import approved_config, build_engine, build_hub, build_token_store
from finsync.cli import output
from finsync.config import ConfigError, FinsyncConfig, load_config
from finsync.domain.clock import utc_now
from finsync.domain.errors import FinsyncError
from finsync.hub import logfilter
from finsync.hub.service import Hub

Json = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
ConfigPath = Annotated[Path | None, typer.Option("--config", "-c", help="finsync.toml to use.")]

# A row id (an exception, an action, a request): within what the BIGINT column holds, so a
# mistyped id is a usage error, never a driver's overflow.
RowId = Annotated[int, typer.Argument(min=1, max=2**63 - 1, show_default=False)]

USAGE_EXIT = 2  # a bad argument or option, as click exits for its own usage errors

S = TypeVar("S")


TOKEN_ENV = "FINSYNC_TOKEN"


def os_login() -> str:
    """The login of the process's effective user, from the system's user database (not
    from $USER or $LOGNAME, which anyone can set)."""
    try:
        import pwd
    except ImportError:  # not a POSIX system
        return getpass.getuser()
    return pwd.getpwuid(os.geteuid()).pw_name


def token_principal(config: FinsyncConfig, token: str) -> Principal:
    """The principal an API token stands for, now (`not_authenticated` if it is unknown,
    pending, revoked or expired): a set FINSYNC_TOKEN is never ignored in favour of the
    login, since a token meant to narrow what a command may do must not widen it."""
    engine = build_token_store(config)
    try:
        return principal_for(engine, token, utc_now())
    finally:
        engine.dispose()


def acting(config: FinsyncConfig) -> Principal:
    """Who this command acts as: the owner of `FINSYNC_TOKEN`, else the OS login mapped
    in `[auth]`; `NotAuthenticatedError` (with what to configure) otherwise."""
    token = os.environ.get(TOKEN_ENV)
    if token:
        return token_principal(config, token)
    principals = {name: p.scopes for name, p in config.auth.principals.items()}
    return mapped_principal(os_login(), config.auth.os_users, principals)


def authorised(config: FinsyncConfig, scope: str) -> Principal:
    """The acting principal, if it holds `scope` (else `ForbiddenError`)."""
    return require(acting(config), scope)


@contextmanager
def embedded(config: Path | None, role: str, what: str,
             build: Callable[[FinsyncConfig, Engine], S], scope: str) -> Iterator[S]:
    """An embedded system's service on the configured database, for a principal holding
    `scope`."""
    loaded = load_config(config)
    authorised(loaded, scope)
    if not any(s.role == role and s.connector == "embedded" for s in loaded.systems.values()):
        raise ConfigError(f"no system in [systems] uses the embedded {what}")
    engine = build_engine(loaded)
    try:
        yield build(loaded, engine)
    finally:
        engine.dispose()


@contextmanager
def hub_for(config: Path | None, scope: str | None, *,
            controlled: bool = False) -> Iterator[tuple[Hub, Principal]]:
    """The hub for a principal holding `scope` (None: the command checks it itself);
    `controlled`: the command runs the pipeline, whose routes, ownership map and thresholds
    must be the approved ones."""
    loaded = load_config(config)
    principal = acting(loaded) if scope is None else authorised(loaded, scope)
    hub = build_hub(loaded)
    try:
        if controlled:
            approved_config(loaded, hub.engine, hub.clock)
        yield hub, principal
    finally:
        hub.engine.dispose()


def day_or_today(text: str | None) -> date:
    try:
        return date.fromisoformat(text) if text else datetime.now(UTC).date()
    except ValueError:
        raise typer.BadParameter(f"not an ISO date: {text!r}") from None


@contextmanager
def guarded(as_json: bool) -> Iterator[None]:
    """Every error becomes a clear message (or JSON), a code and a non-zero exit."""
    _show_notices()
    try:
        yield
    except (typer.Exit, typer.Abort):
        raise
    except typer.BadParameter as exc:
        output.fail(exc.format_message(), "invalid_argument", as_json=as_json,
                    exit_code=USAGE_EXIT)
    except typer.TyperException:  # click's own usage errors: it prints and exits 2
        raise
    except FinsyncError as exc:
        output.fail(str(exc), exc.code, as_json=as_json)
    except OperationalError as exc:
        # Raised before any unit of work (a migration at start-up): storage translates the
        # same failure inside one into StorageUnavailableError, with this code.
        output.fail(f"database unavailable: {exc.orig}", "storage_unavailable",
                    as_json=as_json)
    except OSError as exc:
        output.fail(_os_message(exc), _os_code(exc), as_json=as_json)
    except Exception as exc:  # a defect: say so with a code, and keep the traceback
        output.errors.print(escape(traceback.format_exc()), highlight=False)
        output.fail(f"{type(exc).__name__}: {exc}", "internal_error", as_json=as_json)


def _os_code(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        missing_parent = exc.filename is not None and not Path(exc.filename).parent.is_dir()
        return "directory_not_found" if missing_parent else "file_not_found"
    if isinstance(exc, NotADirectoryError):
        return "directory_not_found"
    if isinstance(exc, IsADirectoryError):
        return "is_a_directory"
    if isinstance(exc, FileExistsError):
        return "file_exists"
    if isinstance(exc, PermissionError):
        return "permission_denied"
    return "no_space" if exc.errno == errno.ENOSPC else "os_error"


def _os_message(exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    return f"{reason}: {exc.filename}" if exc.filename is not None else reason


class _Notice(logging.Handler):
    """Warnings (and worse) of finsync's own modules, printed on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.ERROR:
            output.note(self.format(record))
        else:
            output.errors.print(f"[bold red]{record.levelname.lower()}[/]: "
                                f"{escape(self.format(record))}", highlight=False)


class _UtcFormatter(logging.Formatter):
    def converter(self, seconds: float | None) -> time.struct_time:
        return time.gmtime(seconds)


@contextmanager
def daemon_log() -> Iterator[None]:
    """While a command that runs until stopped (`finsync worker`) runs, it logs what it
    does: finsync's INFO records too (a partition taken, a duty run), one plain line each
    with its UTC time and module (a log collector's input, never wrapped); a one-shot
    command shows warnings only. The logger is as it was afterwards (a process that runs
    more commands, the tests, gets no INFO lines from the next)."""
    logger = logging.getLogger("finsync")
    level, handlers = logger.level, list(logger.handlers)
    logger.setLevel(logging.INFO)
    logger.handlers = [h for h in handlers if not isinstance(h, _Notice)]
    plain = logging.StreamHandler(sys.stderr)
    plain.setFormatter(_UtcFormatter("%(asctime)sZ %(levelname)s %(name)s: %(message)s",
                                     "%Y-%m-%dT%H:%M:%S"))
    logger.addHandler(plain)
    try:
        yield
    finally:
        logger.setLevel(level)
        logger.handlers = handlers


def _show_notices() -> None:
    logfilter.install()  # what the CLI logs carries no secret nor e-mail address
    logger = logging.getLogger("finsync")
    if not any(isinstance(h, _Notice) for h in logger.handlers):
        logger.addHandler(_Notice(logging.WARNING))
