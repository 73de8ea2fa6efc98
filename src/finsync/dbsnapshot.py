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
- A stream of (key, amount in minor units) rows can be read as per-bucket digests instead
  (`digests`), so that two systems' books are compared bucket by bucket and only the rows
  of buckets that differ are read (`in_buckets`). A row's bucket and its fact hash are
  defined once, here (`bucket_of`, `fact_of`: slices of MD5 of canonical text), and every
  side computes them identically: PostgreSQL with its `md5`, SQLite with these functions
  registered on the snapshot's connection, a list-fed reader in Python (`digest_rows`).
- A digest is (bucket, rows in the currency asked, rows with a non-zero amount, their sum,
  the sum of their fact hashes): the rows with a zero amount are a fact of neither side
  (a paid invoice, a document with nothing open), so they never make two digests differ.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    Executable,
    Integer,
    String,
    case,
    cast,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects.postgresql import BIT
from sqlalchemy.sql import Subquery
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
        if conn.dialect.name == "sqlite":
            _register_digest_functions(conn)
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


# -- per-bucket digests ----------------------------------------------------------------------
BUCKET_HEX = 3  # a bucket is the first 3 hex digits of md5(key): 4,096 buckets
FACT_HEX = 10  # a fact hash is 40 bits: a bucket sums 2^23 of them within a signed int64

Digest = tuple[int, int, int, int, int]  # (bucket, rows, facts, amount_minor, fingerprint)


def bucket_of(key: str) -> int:
    return int(hashlib.md5(key.encode()).hexdigest()[:BUCKET_HEX], 16)


def fact_of(key: str, amount_minor: int) -> int:
    """The hash of one row's canonical text `key|amount`."""
    return int(hashlib.md5(f"{key}|{amount_minor}".encode()).hexdigest()[:FACT_HEX], 16)


def digest_rows(rows: Iterable[tuple[str, str, int]], currency: str) -> list[Digest]:
    """The digests of (key, currency, amount) rows, in Python (a reader fed by lists)."""
    found: dict[int, list[int]] = {}
    for key, row_currency, amount in rows:
        d = found.setdefault(bucket_of(key), [0, 0, 0, 0])
        d[0] += row_currency == currency
        if amount != 0:
            d[1] += 1
            d[2] += amount
            d[3] += fact_of(key, amount)
    return [(b, d[0], d[1], d[2], d[3]) for b, d in sorted(found.items())]


def _register_digest_functions(conn: Connection) -> None:
    raw = conn.connection.driver_connection
    assert raw is not None  # a checked-out connection has its driver's
    raw.create_function("finsync_bucket", 1, bucket_of, deterministic=True)
    raw.create_function("finsync_fact", 2, fact_of, deterministic=True)


def _md5_slice(text: ColumnElement[Any], digits: int, as_type: Any) -> ColumnElement[Any]:
    hexed = literal_column("'x'", String) + func.substr(func.md5(text), 1, digits)
    return cast(cast(hexed, BIT(digits * 4)), as_type)


def bucket_sql(conn: Connection, key: ColumnElement[Any]) -> ColumnElement[int]:
    if conn.dialect.name == "postgresql":
        return _md5_slice(key, BUCKET_HEX, Integer)
    return func.finsync_bucket(key, type_=Integer)


def fact_sql(conn: Connection, key: ColumnElement[Any],
             amount: ColumnElement[Any]) -> ColumnElement[int]:
    if conn.dialect.name == "postgresql":
        text = key + literal_column("'|'", String) + cast(cast(amount, BigInteger), String)
        return _md5_slice(text, FACT_HEX, BigInteger)
    return func.finsync_fact(key, amount, type_=BigInteger)


def in_buckets(conn: Connection, key: ColumnElement[Any],
               buckets: Collection[int]) -> ColumnElement[bool]:
    return bucket_sql(conn, key).in_(sorted(buckets))


def digests(conn: Connection, rows: Subquery, currency: str) -> list[Digest]:
    """The digests of a subquery of (key, currency, amount) rows, by bucket."""
    key, amount = rows.c.key, rows.c.amount
    bucket = bucket_sql(conn, key).label("bucket")
    nonzero = amount != 0
    query = (select(bucket,
                    func.sum(case((rows.c.currency == currency, 1), else_=0)),
                    func.sum(case((nonzero, 1), else_=0)),
                    func.sum(amount),
                    func.sum(case((nonzero, fact_sql(conn, key, amount)), else_=0)))
             .group_by(bucket).order_by(bucket))
    return [(int(b), int(n), int(f), int(a or 0), int(h or 0))
            for b, n, f, a, h in conn.execute(query)]
