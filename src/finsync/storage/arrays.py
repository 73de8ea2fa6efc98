"""Many rows into one table in one statement: on PostgreSQL, each column's values bound as
one array and inserted by `INSERT ... SELECT ... FROM unnest(...)`.

Rules:
- PostgreSQL: one statement and one round trip for the batch (an executemany is a statement
  per row on the server, and SQLAlchemy binds each row's parameters one by one). SQLite (in
  process, where an executemany costs no round trip): the executemany of `insert(table)`.
- Columns given per row carry plain values the driver adapts itself (strings, integers,
  None), in the order of the columns named; a value that is the same for every row (the
  batch's moment) is a constant, bound once through its column's type.
- `skip_existing`: a row that would break a unique constraint is left out (`ON CONFLICT DO
  NOTHING`, on both databases), so writing a row again changes nothing; without it, such a
  row fails the statement, as an insert would.
- Rows go in in the order given (serial ids follow it).
- `one_of`: a column among many values, on PostgreSQL `= ANY` of one bound array (an `IN`
  list of hundreds of values costs a parameter each to bind and to plan).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Connection,
    Dialect,
    String,
    Table,
    TextClause,
    any_,
    bindparam,
    insert,
    text,
)
from sqlalchemy.dialects import sqlite

_STATEMENTS: dict[tuple[str, tuple[str, ...], tuple[str, ...], bool], TextClause] = {}


def insert_rows(conn: Connection, table: Table, columns: Sequence[str],
                rows: Sequence[Sequence[Any]], constants: Mapping[str, Any] | None = None, *,
                skip_existing: bool = False) -> None:
    """Insert `rows` (values in the order of `columns`) into `table`, each with `constants`."""
    if not rows:
        return
    constants = dict(constants or {})
    if conn.dialect.name == "postgresql":
        statement = _unnest(conn.dialect, table, tuple(columns), tuple(constants),
                            skip_existing)
        params = {f"b_{n}": [row[n] for row in rows] for n in range(len(columns))}
        params.update({f"b_{name}": value for name, value in constants.items()})
        conn.execute(statement, params)
        return
    query = sqlite.insert(table).on_conflict_do_nothing() if skip_existing else insert(table)
    conn.execute(query, [{**dict(zip(columns, row, strict=True)), **constants}
                         for row in rows])


def _unnest(dialect: Dialect, table: Table, columns: tuple[str, ...],
            constants: tuple[str, ...], skip_existing: bool) -> TextClause:
    """The statement for these columns, made once (PostgreSQL's)."""
    key = (table.name, columns, constants, skip_existing)
    statement = _STATEMENTS.get(key)
    if statement is None:
        statement = _STATEMENTS[key] = _build(dialect, table, columns, constants,
                                              skip_existing)
    return statement


def _build(dialect: Dialect, table: Table, columns: tuple[str, ...],
           constants: tuple[str, ...], skip_existing: bool) -> TextClause:
    arrays = ", ".join(f"CAST(:b_{n} AS {table.c[name].type.compile(dialect)}[])"
                       for n, name in enumerate(columns))
    quote = dialect.identifier_preparer.quote  # only where a name needs it, as SQLAlchemy
    names = ", ".join(quote(name) for name in (*columns, *constants))
    picked = ", ".join([*(f"r.c{n}" for n in range(len(columns))),
                        *(f":b_{name}" for name in constants)])
    aliases = ", ".join(f"c{n}" for n in range(len(columns)))
    sql = (f"INSERT INTO {quote(table.name)} ({names}) SELECT {picked} "
           f"FROM unnest({arrays}) AS r ({aliases})")
    if skip_existing:
        sql += " ON CONFLICT DO NOTHING"
    return text(sql).bindparams(*(bindparam(f"b_{name}", type_=table.c[name].type)
                                  for name in constants))


def one_of(conn: Connection, column: ColumnElement[str],
           values: Sequence[str]) -> ColumnElement[bool]:
    """`column IN values`; on PostgreSQL `column = ANY(:array)`, one parameter: 1,000 event
    ids read in 12 instead of 21 ms."""
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(String)))
    return column.in_(values)
