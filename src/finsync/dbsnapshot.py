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
  defined once, here (`bucket_of`, `fact_of`: from slices of the key's MD5), and every
  side computes them identically: PostgreSQL with its `md5`, SQLite with these functions
  registered on the snapshot's connection, a list-fed reader in Python (`digest_rows`).
- A digest is (bucket, rows in the currency asked, rows with a non-zero amount, their sum,
  the sum of their fact hashes): the rows with a zero amount are a fact of neither side
  (a paid invoice, a document with nothing open), so they never make two digests differ.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Generator, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    Executable,
    Integer,
    Select,
    String,
    case,
    cast,
    func,
    literal,
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


def stream(conn: Connection, query: Executable,
           rows: int = STREAM_ROWS) -> Generator[Any, None, None]:
    """The rows of `query`, fetched `rows` at a time (a server-side cursor on PostgreSQL),
    the cursor closed when the rows are read or the caller stops."""
    with conn.execution_options(yield_per=rows).execute(query) as result:
        yield from result


def stream_by_key(conn: Connection, query: Select[Any]) -> Iterator[Any]:
    """`stream` of a query with a `key` column first and an amount in minor units last, in
    the key's code-point order; the amount as an `int` (PostgreSQL sums are `Decimal`)."""
    ordered = query.order_by(code_point_order(conn, query.selected_columns.key))
    for row in stream(conn, ordered):
        yield (*row[:-1], int(row[-1]))


def code_point_order(conn: Connection, column: ColumnElement[Any]) -> ColumnElement[Any]:
    if conn.dialect.name == "postgresql":
        return column.collate("C")
    return column  # SQLite compares text bytewise (BINARY): UTF-8 keeps code-point order


# -- per-bucket digests ----------------------------------------------------------------------
# One MD5 of the key per row: its first 3 hex digits are the bucket (4,096 buckets), the
# next 10 (40 bits) the key's weight; a row's fact hash is weight * (amount + 1) modulo
# 2^40, so that a bucket sums 2^23 of them within a signed int64. Any change of a row's
# amount moves the sum by weight * change (modulo 2^40), which other rows' changes cancel
# only by chance (about 2^-40), and the digest also compares the count and the sum.
BUCKET_HEX = 3
WEIGHT_HEX = 10
FACT_MODULUS = 1 << (WEIGHT_HEX * 4)

Digest = tuple[int, int, int, int, int]  # (bucket, rows, facts, amount_minor, fingerprint)


def bucket_of(key: str) -> int:
    return int(hashlib.md5(key.encode()).hexdigest()[:BUCKET_HEX], 16)


def fact_of(key: str, amount_minor: int) -> int:
    """The hash of one row's (key, amount)."""
    hexed = hashlib.md5(key.encode()).hexdigest()
    weight = int(hexed[BUCKET_HEX:BUCKET_HEX + WEIGHT_HEX], 16)
    return weight * (amount_minor + 1) % FACT_MODULUS


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


def _hex_slice(hexed: ColumnElement[Any], start: int, digits: int,
               as_type: Any) -> ColumnElement[Any]:
    sliced = literal_column("'x'", String) + func.substr(hexed, start + 1, digits)
    return cast(cast(sliced, BIT(digits * 4)), as_type)


def bucket_sql(conn: Connection, key: ColumnElement[Any]) -> ColumnElement[int]:
    if conn.dialect.name == "postgresql":
        return _hex_slice(func.md5(key), 0, BUCKET_HEX, Integer)
    return func.finsync_bucket(key, type_=Integer)


def in_buckets(conn: Connection, key: ColumnElement[Any],
               buckets: Collection[int]) -> ColumnElement[bool]:
    return bucket_sql(conn, key).in_(sorted(buckets))


def digests(conn: Connection, rows: Subquery, currency: str) -> list[Digest]:
    """The digests of a subquery of (key, currency, amount) rows, by bucket."""
    source: Subquery = rows
    bucket: ColumnElement[int]
    fact: ColumnElement[int]
    if conn.dialect.name == "postgresql":
        source = _hashed(rows)
        bucket = source.c.bucket
        fact = source.c.fact
    else:
        bucket = func.finsync_bucket(rows.c.key, type_=Integer)
        fact = func.finsync_fact(rows.c.key, rows.c.amount, type_=BigInteger)
    nonzero = source.c.amount != 0
    labelled = bucket.label("bucket")
    query = (select(labelled,
                    func.sum(case((source.c.currency == currency, 1), else_=0)),
                    func.sum(case((nonzero, 1), else_=0)),
                    func.sum(source.c.amount),
                    func.sum(case((nonzero, fact), else_=0)))
             .group_by(labelled).order_by(labelled))
    return [(int(b), int(n), int(f), int(a or 0), int(h or 0))
            for b, n, f, a, h in conn.execute(query)]


HALF_BITS = WEIGHT_HEX * 2  # the weight in two halves, so each product fits an int64
HALF_MASK = (1 << HALF_BITS) - 1


def _hashed(rows: Subquery) -> Subquery:
    """PostgreSQL: the rows with their bucket and fact hash, in int64 arithmetic rather than
    numeric (which weight * (amount + 1), up to 2^80, would need), amounts being bigint:

    - the MD5's first 13 hex digits are cast to a bigint once: bucket = its top 12 bits,
      weight = its low 40;
    - a = (amount + 1) mod 2^40, by a bitwise AND, which (two's complement) is never
      negative, as Python's modulo (the definition) is not and PostgreSQL's % can be;
    - weight * a mod 2^40 = (low * a + ((high * a) mod 2^20) * 2^20) mod 2^40, where
      weight = high * 2^20 + low: each product is below 2^60.
    """
    # Only the columns a digest reads: another (a customer) left unread is never computed.
    inner = select(rows.c.key, rows.c.currency, rows.c.amount,
                   func.md5(rows.c.key).label("md5")).offset(0).subquery()
    head = _hex_slice(inner.c.md5, 0, BUCKET_HEX + WEIGHT_HEX, BigInteger)
    plus_one = cast(inner.c.amount, BigInteger) + 1
    # MD5 and the casts once per row: OFFSET 0 keeps the planner from inlining them.
    split = select(inner.c.amount, inner.c.currency, head.label("head"),
                   _bits(plus_one, "&", FACT_MODULUS - 1).label("a")).offset(0).subquery()
    a = split.c.a
    weight = _bits(split.c.head, "&", FACT_MODULUS - 1)
    low = _bits(weight, "&", HALF_MASK)
    high = _bits(weight, ">>", HALF_BITS)
    wrapped = low * a + _bits(_bits(high * a, "&", HALF_MASK), "<<", HALF_BITS)
    return select(split.c.amount, split.c.currency,
                  cast(_bits(split.c.head, ">>", WEIGHT_HEX * 4), Integer).label("bucket"),
                  _bits(wrapped, "&", FACT_MODULUS - 1).label("fact")).subquery()


def _bits(value: ColumnElement[Any], operator: str, operand: int) -> ColumnElement[int]:
    """A bitwise operator on a bigint (PostgreSQL's &, and >> and << by an integer)."""
    typed = literal(operand, BigInteger if operator == "&" else Integer)
    return value.op(operator, return_type=BigInteger)(typed)
