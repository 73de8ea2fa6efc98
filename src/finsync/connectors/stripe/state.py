"""The Stripe connector's own tables (prefix `stripe_`, own migrations and version table).

- `stripe_cursors`: per source, how far the catch-up poller has read `/v1/events`.
- `stripe_objects`: the local mirror of the account's objects (`mirror`).
- `stripe_versions`: the version the poller gave each event of a versioned object
  (customer, subscription), in the order `/v1/events` lists them. The first event seen of an
  object is version 1. Asking again for an event's version returns the same number, so a
  poll that stops half-way (crash, Stripe down) repeats itself without renumbering.
- `stripe_links`: what the subscription platform (`orders`) made at Stripe, by source:
  the Stripe id of a canonical customer or contract, and the receipt of a delivery key.
  A link is written once, after Stripe answered; it is a cache of Stripe's own metadata
  (which names the canonical ids), never the only record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError

from finsync import migration
from finsync.dbtypes import NAMING_CONVENTION, UtcDateTime
from finsync.domain.errors import TransientError

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "stripe_alembic_version"

metadata = MetaData(naming_convention=NAMING_CONVENTION)

cursors = Table(
    "stripe_cursors", metadata,
    Column("source", String(64), primary_key=True),
    Column("position", Text, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

versions = Table(
    "stripe_versions", metadata,
    Column("source", String(64), nullable=False),
    Column("event_id", String(255), nullable=False),
    Column("object_id", String(255), nullable=False),
    Column("version", Integer, nullable=False),
    PrimaryKeyConstraint("source", "event_id"),
    UniqueConstraint("source", "object_id", "version"),
)


links = Table(
    "stripe_links", metadata,
    Column("source", String(64), nullable=False),
    Column("kind", String(32), nullable=False),  # customer | subscription | receipt
    Column("key", String(255), nullable=False),  # canonical id, or a delivery key
    Column("stripe_id", String(255), nullable=False),
    Column("detail", Text, nullable=False),  # JSON: a receipt's detail and references
    PrimaryKeyConstraint("source", "kind", "key"),
)


def upgrade(engine: Engine, revision: str = "head") -> None:
    migration.upgrade(engine, MIGRATIONS, revision)


@contextmanager
def unit(engine: Engine) -> Iterator[Connection]:
    """One transaction on the connector's tables; a lost race with another writer (another
    poller numbering or mirroring the same object just now) is transient: the next run
    repeats it."""
    try:
        with engine.begin() as conn:
            yield conn
    except OperationalError as exc:
        raise TransientError(f"database unavailable: {exc.orig}") from exc
    except IntegrityError as exc:
        raise TransientError(f"concurrent Stripe writer: {exc.orig}") from exc


class PollState:
    def __init__(self, engine: Engine, source: str, clock: Callable[[], datetime]) -> None:
        self._engine, self.source, self._clock = engine, source, clock

    def cursor(self) -> str | None:
        with self._engine.connect() as conn:
            return conn.execute(select(cursors.c.position)
                                .where(cursors.c.source == self.source)).scalar()

    def save_cursor(self, position: str) -> None:
        with unit(self._engine) as conn:
            values = {"position": position, "updated_at": self._clock()}
            done = conn.execute(update(cursors).where(cursors.c.source == self.source)
                                .values(values)).rowcount
            if not done:
                conn.execute(insert(cursors).values(source=self.source, **values))

    def versions(self, events: Sequence[tuple[str, str]]) -> dict[str, int]:
        """`{event id: version}` for `(object id, event id)` pairs, numbered in the order
        given; events numbered before keep their number."""
        result: dict[str, int] = {}
        with unit(self._engine) as conn:
            for object_id, event_id in events:
                result[event_id] = self._version(conn, object_id, event_id)
        return result

    def _version(self, conn: Connection, object_id: str, event_id: str) -> int:
        held = conn.execute(select(versions.c.version).where(
            versions.c.source == self.source, versions.c.event_id == event_id)).scalar()
        if held is not None:
            return int(held)
        last = conn.execute(select(func.max(versions.c.version)).where(
            versions.c.source == self.source, versions.c.object_id == object_id)).scalar()
        version = int(last or 0) + 1
        conn.execute(insert(versions).values(source=self.source, event_id=event_id,
                                             object_id=object_id, version=version))
        return version
