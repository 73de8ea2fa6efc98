"""Writing a batch's rows in bulk, past SQLAlchemy's per-row parameter handling.

Rules:
- A row is a tuple of values in the order of the columns named with it. Each value goes
  through its column type's own bind processor for the dialect, so what is stored is
  exactly what `insert(table)` would store (dates and timestamps as SQLite keeps them).
- PostgreSQL: one COPY ... FROM STDIN per table (its rows formatted by the driver's C
  code; one statement of arrays through `unnest` was one round trip less per table but
  cost more to bind than it saved). SQLite (in process, where an executemany costs no
  round trips): the driver's executemany.
- A database error comes out as SQLAlchemy's (an `IntegrityError` for a duplicate key), as
  from `Connection.execute`, so callers tell a conflict from an outage alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.exc import DBAPIError

Processor = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class Rows:
    table: Table
    columns: tuple[str, ...]
    rows: Sequence[tuple[Any, ...]]


def insert_rows(conn: Connection, writes: Sequence[Rows]) -> None:
    """Insert every `Rows` of `writes` (tables in that order), in `conn`'s transaction."""
    for w in writes:
        if not w.rows:
            continue
        names = ", ".join(f'"{name}"' for name in w.columns)
        if conn.dialect.name == "postgresql":
            _copy(conn, f'COPY "{w.table.name}" ({names}) FROM STDIN', _bound(conn, w))
            continue
        marks = ", ".join("?" for _ in w.columns)
        conn.exec_driver_sql(f'INSERT INTO "{w.table.name}" ({names}) VALUES ({marks})',
                             _bound(conn, w))


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


def _bound(conn: Connection, w: Rows) -> list[tuple[Any, ...]]:
    dialect = conn.dialect
    processors = [(n, _remembered(p)) for n, name in enumerate(w.columns)
                  if (p := w.table.c[name].type.dialect_impl(dialect).bind_processor(dialect))
                  is not None]
    if not processors:
        return list(w.rows)
    bound = []
    for row in w.rows:
        values = list(row)
        for n, process in processors:
            values[n] = process(values[n])
        bound.append(tuple(values))
    return bound


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
