"""Engines and transactions for SQLite (WAL, the embedded default) and PostgreSQL.

SQLite write transactions start with `BEGIN IMMEDIATE`, so two processes never both read
and then fail to upgrade to a write lock; `synchronous=FULL` because an acknowledged raw
event must survive a power cut, not only a process crash.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError

from finsync.domain.errors import FinsyncError


class StorageError(FinsyncError):
    code = "storage_error"


class StorageUnavailableError(StorageError):
    code = "storage_unavailable"


def normalise_url(url: str) -> str:
    """Plain `postgresql://` URLs use the psycopg 3 driver."""
    parsed = make_url(url)
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let the begin hook below control transactions
        cursor = dbapi_conn.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "busy_timeout=30000",
                       "foreign_keys=ON"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        reading = conn.get_execution_options().get(_READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")


_READ_ONLY = "finsync_read_only"


def read_only(engine: Engine) -> Engine:
    """`engine` for reads only (same pool): on SQLite its transactions begin with a plain
    `BEGIN`, so a report waits for no writer; for a service whose reads go through
    `engine.connect()` (the embedded systems'), injected by the composition root."""
    return engine.execution_options(**{_READ_ONLY: True})


def make_engine(url: str, **kwargs: Any) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, **kwargs)
        _sqlite_pragmas(engine)
        return engine
    # The session's name says which process wrote: the pipeline's wake-up ignores the
    # notifications of its own process, whose writers notify it directly (`hub.wakeup`).
    kwargs.setdefault("connect_args", {}).setdefault("application_name", process_name())
    engine = create_engine(url, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        _ping_when_idle(engine)
    return engine


# A pooled connection idle longer than this is pinged before it is handed out.
PING_IDLE_S = 5.0


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection before it is handed out only when it sat idle in the pool
    for `PING_IDLE_S`: a server restarted, or a connection dropped by a proxy, is found
    before a unit of work meets it. `pool_pre_ping` pings at every checkout, one round trip
    per transaction: a tenth of a small batch's time in the pipeline. A connection that
    fails its ping is replaced (`DisconnectionError`: the pool tries a new one); one that
    breaks within `PING_IDLE_S` of its last use fails its statement, which invalidates the
    pool, and the unit of work is retried by its caller as any transient error is."""
    @event.listens_for(engine, "connect")
    def _connected(dbapi_connection: Any, record: Any) -> None:
        record.info[_RETURNED] = time.monotonic()

    @event.listens_for(engine, "checkin")
    def _returned(dbapi_connection: Any, record: Any) -> None:
        record.info[_RETURNED] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _handed_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if time.monotonic() - record.info.get(_RETURNED, 0.0) < PING_IDLE_S:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError(f"a pooled connection failed its ping: {exc}") from exc


_RETURNED = "finsync_returned_at"


def process_name() -> str:
    """This process's PostgreSQL `application_name`."""
    return f"finsync-{os.getpid()}"


def serialize(conn: Connection, name: str, *, shared: bool = False) -> None:
    """Hold a database-wide lock named `name` until this transaction ends; `shared`: a
    shared hold, which only an exclusive one (`shared=False`) waits for.

    SQLite already has one writer at a time (`BEGIN IMMEDIATE`); PostgreSQL takes a
    transaction-scoped advisory lock keyed by a stable hash of the name.
    """
    if conn.dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
        conn.execute(text(f"SELECT {function}(:key)"), {"key": key})


def serialize_each(conn: Connection, name: str, keys: Collection[int]) -> None:
    """Hold the locks `(name, key)` for each of `keys` (32-bit integers) until this
    transaction ends: two transactions wait for each other only where their keys meet.

    Taken in ascending order, in one statement, so two transactions holding some and
    wanting others never deadlock. PostgreSQL's two-integer advisory locks, a key space
    apart from `serialize`'s; nothing on SQLite (one writer at a time).
    """
    if conn.dialect.name != "postgresql" or not keys:
        return
    space = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big", signed=True)
    conn.execute(text("SELECT count(pg_advisory_xact_lock(:space, k)) FROM "
                      "(SELECT unnest(CAST(:keys AS integer[])) AS k ORDER BY 1) AS ordered"),
                 {"space": space, "keys": sorted(set(keys))})


# SQLSTATEs of a transaction that lost to a concurrent one: a unique key it committed first
# (the loser waited for that commit), a deadlock, a serialization failure.
_CONFLICTS = frozenset({"23505", "40P01", "40001"})


def conflicted(exc: BaseException) -> bool:
    """Whether `exc` (or what it was raised from) is PostgreSQL saying that a concurrent
    transaction won: doing the unit of work again sees what that one committed."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, DBAPIError):
            return getattr(seen.orig, "sqlstate", None) in _CONFLICTS
        seen = seen.__cause__
    return False


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """One unit of work: commits on success, rolls back on any error."""
    try:
        with engine.begin() as conn:
            yield conn
    except OperationalError as exc:
        raise StorageUnavailableError(f"database unavailable: {exc.orig}") from exc
    except DBAPIError as exc:
        raise StorageError(f"database error: {exc.orig}") from exc


@contextmanager
def reading(engine: Engine, *, snapshot: bool = False) -> Iterator[Connection]:
    """A read-only unit of work; on SQLite it does not take the write lock. With
    `snapshot`, every read sees the database as of the first one (REPEATABLE READ on
    PostgreSQL; a SQLite read transaction already does), for reports that read several
    tables that must agree."""
    options: dict[str, Any] = {_READ_ONLY: True}
    if snapshot and engine.dialect.name == "postgresql":
        options["isolation_level"] = "REPEATABLE READ"
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(**options)
            with conn.begin():
                yield conn
    except OperationalError as exc:
        raise StorageUnavailableError(f"database unavailable: {exc.orig}") from exc
