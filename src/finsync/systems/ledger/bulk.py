"""Writing a batch's rows in bulk, past SQLAlchemy's per-row parameter handling.

Rules:
- A row is a tuple of values in the order of the columns named with it. Each value goes
  through its column type's own bind processor for the dialect, so what is stored is
  exactly what `insert(table)` would store (dates and timestamps as SQLite keeps them).
- PostgreSQL: one COPY ... FROM STDIN per table, one round trip. SQLite (in process, where
  an executemany costs no round trips): the driver's executemany.
- A database error comes out as SQLAlchemy's (an `IntegrityError` for a duplicate key), as
  from `Connection.execute`, so callers tell a conflict from an outage alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.exc import DBAPIError

Processor = Callable[[Any], Any]


def insert_rows(conn: Connection, table: Table, columns: Sequence[str],
                rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert `rows` (values in `columns` order) into `table`, in `conn`'s transaction."""
    if not rows:
        return
    dialect = conn.dialect
    processors = [(n, _remembered(p)) for n, name in enumerate(columns)
                  if (p := table.c[name].type.dialect_impl(dialect).bind_processor(dialect))
                  is not None]
    if processors:
        rows = [_bound(row, processors) for row in rows]
    names = ", ".join(f'"{name}"' for name in columns)
    if dialect.name == "postgresql":
        _copy(conn, f'COPY "{table.name}" ({names}) FROM STDIN', rows)
        return
    marks = ", ".join("?" for _ in columns)
    conn.exec_driver_sql(f'INSERT INTO "{table.name}" ({names}) VALUES ({marks})', list(rows))


def _remembered(process: Processor) -> Processor:
    """`process`, each value's result kept: a batch's rows repeat few dates, and SQLite's
    date processor formats in Python."""
    done: dict[Any, Any] = {}

    def bound(value: Any) -> Any:
        if value in done:
            return done[value]
        result = done[value] = process(value)
        return result

    return bound


def _bound(row: tuple[Any, ...], processors: Sequence[tuple[int, Processor]]) -> tuple[Any, ...]:
    values = list(row)
    for n, process in processors:
        values[n] = process(values[n])
    return tuple(values)


def _copy(conn: Connection, statement: str, rows: Sequence[tuple[Any, ...]]) -> None:
    driver = conn.connection.driver_connection
    assert driver is not None
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
    except conn.dialect.loaded_dbapi.Error as exc:
        base = conn.dialect.loaded_dbapi.Error
        raise DBAPIError.instance(statement, None, exc, base) from exc
