"""One consistent read of a database, for reports that read many tables (reconciliation).

Rules:
- Every statement of a snapshot sees the same committed state: PostgreSQL runs the
  transaction at REPEATABLE READ (one snapshot for the whole transaction); SQLite runs one
  deferred read transaction (WAL: readers see the state as of their first read and never
  block writers). Nothing is written; the transaction is rolled back at the end.
- Results are streamed (server-side cursors on PostgreSQL), so a report over a million rows
  holds one batch of rows at a time.
- `code_point_order` sorts ids as Python compares strings, on every backend (PostgreSQL's
  default collation does not), so two streams from two systems can be merged.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, Executable
from sqlalchemy.sql.elements import ColumnElement

# The execution option `storage.db` reads to begin SQLite transactions deferred (a read)
# rather than IMMEDIATE (a write that takes the lock).
READ_ONLY_OPTION = "finsync_read_only"
STREAM_ROWS = 5_000


@contextmanager
def read_snapshot(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn:
        options: dict[str, Any] = {READ_ONLY_OPTION: True}
        if conn.dialect.name == "postgresql":
            options["isolation_level"] = "REPEATABLE READ"
        conn = conn.execution_options(**options)
        with conn.begin() as txn:
            yield conn
            txn.rollback()


def stream(conn: Connection, query: Executable) -> Iterator[Any]:
    """The rows of `query`, fetched `STREAM_ROWS` at a time (a server-side cursor on
    PostgreSQL), the cursor closed when the rows are read or the caller stops."""
    with conn.execution_options(yield_per=STREAM_ROWS).execute(query) as result:
        yield from result


def code_point_order(conn: Connection, column: ColumnElement[Any]) -> ColumnElement[Any]:
    if conn.dialect.name == "postgresql":
        return column.collate("C")
    return column  # SQLite compares text bytewise (BINARY): UTF-8 keeps code-point order
