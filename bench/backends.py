"""What the benchmarks in bench/ share: the database backends, each handing out an empty
database per measurement, the timed bare-executemany baseline, and the console, options and
machine notes around them.

bench/ is not a package: intake.py and ledger.py put their own folder first on sys.path and
import this module by name. See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

import sqlalchemy
from rich.console import Console
from rich.markup import escape
from rich.table import Table as RichTable
from sqlalchemy import Column, Engine, Index, MetaData, Table, create_engine, insert, text
from sqlalchemy.exc import DBAPIError

from finsync.storage.db import make_engine, normalise_url

PG_URL_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
BACKENDS = ("sqlite", "postgresql")

T = TypeVar("T")
Note = tuple[str, str]


def chunks(seq: Sequence[T], size: int) -> list[Sequence[T]]:
    return [seq[k:k + size] for k in range(0, len(seq), size)]


def plain_copy(table: Table, name: str) -> Table:
    """`table`'s columns, types, primary key and indexes under another name (and index
    names of its own), so the baseline writes the same rows beside the real table."""
    copy = Table(name, MetaData(), *(
        Column(c.name, c.type, nullable=c.nullable, primary_key=c.primary_key,
               autoincrement=c.autoincrement) for c in table.columns))
    for index in table.indexes:
        columns = [c.name for c in index.columns]
        Index(f"ix_{name}_{'_'.join(columns)}", *(copy.c[c] for c in columns))
    return copy


def insert_batches(engine: Engine, table: Table, batches: Sequence[Sequence[Any]]) -> float:
    """The baselines' measured loop: a bare executemany of each batch into `table`, one
    commit per batch; the seconds it took."""
    statement = insert(table)
    start = time.perf_counter()
    for batch in batches:
        with engine.begin() as conn:
            conn.execute(statement, batch)
    return time.perf_counter() - start


# --------------------------------------------------------------------------------------
# Backends: each hands out an empty database for one measurement


class Backend(Protocol):
    name: str

    def fresh(self) -> AbstractContextManager[str]: ...  # yields an empty database's URL

    def settle(self) -> None: ...  # between two figures measured on the same database

    def notes(self) -> list[Note]: ...

    def close(self) -> None: ...


class SqliteBackend:
    """A new database file per measurement in a temp directory (WAL, as make_engine sets),
    named `<prefix>-<n>.db`."""

    name = "sqlite"

    def __init__(self, workdir: Path, prefix: str) -> None:
        self._dir, self._prefix, self._count = workdir, prefix, 0
        self._pragmas: dict[str, str] = {}

    @contextmanager
    def fresh(self) -> Iterator[str]:
        self._count += 1
        path = self._dir / f"{self._prefix}-{self._count}.db"
        url = f"sqlite:///{path}"
        if not self._pragmas:
            engine = make_engine(url)
            with engine.connect() as conn:
                for pragma in ("journal_mode", "synchronous"):
                    value = conn.exec_driver_sql(f"PRAGMA {pragma}").scalar()
                    self._pragmas[pragma] = str(value)
            engine.dispose()
        try:
            yield url
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)

    def settle(self) -> None:
        pass

    def notes(self) -> list[Note]:
        sync = {"0": "OFF", "1": "NORMAL", "2": "FULL", "3": "EXTRA"}
        return [("SQLite", f"{sqlite3.sqlite_version}, journal_mode="
                 f"{self._pragmas.get('journal_mode', '?')}, synchronous="
                 f"{sync.get(self._pragmas.get('synchronous', ''), '?')}; "
                 f"file in {self._dir} ({filesystem_of(self._dir)})")]

    def close(self) -> None:
        pass


class PostgresBackend:
    """`CREATE DATABASE finsync_bench_<pid>` for the run; a fresh `public` schema per
    measurement; the database is dropped at the end. `unit` names what a CHECKPOINT
    precedes in the notes ("measurement", "figure")."""

    name = "postgresql"

    def __init__(self, admin_url: str, unit: str) -> None:
        self._admin = create_engine(normalise_url(admin_url), isolation_level="AUTOCOMMIT",
                                    connect_args={"connect_timeout": 5})
        self._dbname = f"finsync_bench_{os.getpid()}"
        self._unit = unit
        self._settings: dict[str, str] = {}
        self._checkpoint = "not tried"
        try:
            with self._admin.connect() as conn:
                for name in ("server_version", "fsync", "synchronous_commit",
                             "wal_sync_method", "shared_buffers"):
                    self._settings[name] = str(conn.exec_driver_sql(f"SHOW {name}").scalar())
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self._dbname}"'))
                conn.execute(text(f'CREATE DATABASE "{self._dbname}"'))
        except DBAPIError:
            self._admin.dispose()
            raise
        self.url = self._admin.url.set(database=self._dbname).render_as_string(
            hide_password=False)
        self._db = create_engine(self.url, isolation_level="AUTOCOMMIT")

    @contextmanager
    def fresh(self) -> Iterator[str]:
        with self._db.connect() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        self.settle()
        yield self.url

    def settle(self) -> None:
        """CHECKPOINT, so no measurement pays for the previous one's dirty pages."""
        with self._db.connect() as conn:
            try:
                conn.execute(text("CHECKPOINT"))
                self._checkpoint = f"before each {self._unit}"
            except DBAPIError:
                self._checkpoint = f"not permitted (no CHECKPOINT between {self._unit}s)"

    def notes(self) -> list[Note]:
        s = self._settings
        return [("PostgreSQL", f"{s['server_version']} at {self._admin.url.host}:"
                 f"{self._admin.url.port}; fsync={s['fsync']}, synchronous_commit="
                 f"{s['synchronous_commit']}, wal_sync_method={s['wal_sync_method']}, "
                 f"shared_buffers={s['shared_buffers']}; CHECKPOINT {self._checkpoint}; "
                 f"database {self._dbname} (dropped at the end)")]

    def close(self) -> None:
        self._db.dispose()
        with self._admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self._dbname}" WITH (FORCE)'))
        self._admin.dispose()


def filesystem_of(path: Path) -> str:
    """The filesystem type holding `path` (Linux, best effort): fsync on tmpfs is free."""
    try:
        mounts = [line.split()[1:3] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return "filesystem unknown"
    resolved = str(path.resolve())
    best = max((m for m in mounts if resolved == m[0] or resolved.startswith(m[0].rstrip("/")
                                                                            + "/")),
               key=lambda m: len(m[0]), default=None)
    return "filesystem unknown" if best is None else f"{best[1]} at {best[0]}"


def open_backend(name: str, workdir: Path, *, sqlite_prefix: str, unit: str) -> Backend | str:
    """The backend, or why it is skipped."""
    if name == "sqlite":
        return SqliteBackend(workdir, sqlite_prefix)
    url = os.environ.get("FINSYNC_BENCH_PG_URL", PG_URL_DEFAULT)
    try:
        return PostgresBackend(url, unit)
    except DBAPIError as exc:
        reason = str(exc.orig or exc).strip().splitlines()[0]
        return f"skipped: {reason} (FINSYNC_BENCH_PG_URL={url})"


def run_backends(names: Sequence[str], workdir: Path, run: Callable[[Backend], T],
                 notes: list[Note], say: Callable[[str], None], *, sqlite_prefix: str,
                 unit: str) -> list[T]:
    """`run` on each backend in turn, closing it after; its notes (or why it was skipped)
    are added to `notes`, and SQLite's version when it was not measured."""
    results: list[T] = []
    for name in names:
        backend = open_backend(name, workdir, sqlite_prefix=sqlite_prefix, unit=unit)
        if isinstance(backend, str):
            say(f"[yellow]PostgreSQL {escape(backend)}[/yellow]")
            notes.append(("PostgreSQL", backend))
            continue
        try:
            results.append(run(backend))
            notes.extend(backend.notes())
        finally:
            backend.close()
    if "sqlite" not in names:
        notes.append(("SQLite", f"{sqlite3.sqlite_version} (not measured)"))
    return results


# --------------------------------------------------------------------------------------
# Options, console and notes


def add_run_options(parser: argparse.ArgumentParser, *, repeat_figures: str) -> None:
    """--backends, and --repeat for the short figures named by `repeat_figures`."""
    parser.add_argument("--backends", default=",".join(BACKENDS),
                        help="comma-separated: sqlite, postgresql")
    parser.add_argument("--repeat", type=int, default=3,
                        help=f"runs of figures {repeat_figures} (the median is shown); default 3")


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """`parser.parse_args`, with --backends made a list; an unknown name is a usage error."""
    args = parser.parse_args(argv)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(args.backends) - set(BACKENDS)
    if unknown:
        parser.error(f"unknown backend(s): {', '.join(sorted(unknown))}")
    return args


def make_console() -> tuple[Console, Callable[[str], None]]:
    """A console as wide as the terminal, and `say`, which prints a line of progress."""
    console = Console(width=shutil.get_terminal_size((120, 24)).columns)

    def say(message: str) -> None:
        console.print(message, highlight=False)

    return console, say


def machine_notes() -> list[Note]:
    """Python, platform, CPUs and SQLAlchemy; the backends add their own."""
    return [
        ("Python", f"{platform.python_implementation()} {platform.python_version()} "
                   f"on {platform.platform()}"),
        ("CPU", f"{os.cpu_count()} logical CPUs, {platform.processor() or platform.machine()}"),
        ("SQLAlchemy", sqlalchemy.__version__),
    ]


def print_grids(console: Console, grids: Iterable[tuple[str, Iterable[Note]]]) -> None:
    """Titled two-column key/value grids, as printed below the table of figures."""
    for title, rows in grids:
        grid = RichTable(title=title, title_justify="left", show_header=False, box=None)
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column()
        for key, value in rows:
            grid.add_row(escape(key), escape(value))
        console.print(grid)
