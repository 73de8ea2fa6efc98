"""The HubSpot connector's own tables (prefix `hubspot_`, own migrations and version table).

Rules:
- `hubspot_pending`: the CRM objects a verified webhook named and the fetcher has not read
  yet, one row per (source, object type, object id): fifty webhooks about one deal are one
  fetch. A row leaves only after the snapshot it led to is committed in the hub (or the
  object turned out to be gone, or not approved): a crash in between fetches it again.
- `hubspot_versions`: the version finsync gave each approved state of a deal or company.
  A state is its commercial content's fingerprint (`mapping.fingerprint`), never HubSpot's
  modification time: a property nobody bills by changes no version. The same fingerprint
  as the object's latest version is that version again (a duplicate); any other one is the
  next number, even one equal to an older version (a change undone is a change). A state
  read with a modification time older than the latest version's is a stale read (HubSpot's
  API is eventually consistent) and gets no number.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
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
    delete,
    func,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError, OperationalError

from finsync import migration
from finsync.dbtypes import NAMING_CONVENTION, UtcDateTime
from finsync.domain.errors import TransientError

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "hubspot_alembic_version"

metadata = MetaData(naming_convention=NAMING_CONVENTION)

pending = Table(
    "hubspot_pending", metadata,
    Column("source", String(64), nullable=False),
    Column("object_type", String(32), nullable=False),
    Column("object_id", String(64), nullable=False),
    Column("noted_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("source", "object_type", "object_id"),
)

versions = Table(
    "hubspot_versions", metadata,
    Column("source", String(64), nullable=False),
    Column("object_type", String(32), nullable=False),
    Column("object_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("modified_at", UtcDateTime, nullable=True),
    PrimaryKeyConstraint("source", "object_type", "object_id", "version"),
)


def upgrade(engine: Engine, revision: str = "head") -> None:
    migration.upgrade(engine, MIGRATIONS, revision)


@contextmanager
def unit(engine: Engine) -> Iterator[Connection]:
    """One transaction on the connector's tables; a lost race with another fetcher numbering
    the same object is transient: the next run repeats it."""
    try:
        with engine.begin() as conn:
            yield conn
    except OperationalError as exc:
        raise TransientError(f"database unavailable: {exc.orig}") from exc
    except IntegrityError as exc:
        raise TransientError(f"concurrent HubSpot fetcher: {exc.orig}") from exc


@dataclass(frozen=True, slots=True)
class ObjectRef:
    object_type: str  # "deal", "company", "line_item", "quote"
    object_id: str


@dataclass(frozen=True, slots=True)
class Numbered:
    version: int | None  # None: a stale read, no number
    duplicate: bool


class FetchState:
    def __init__(self, engine: Engine, source: str, clock: Callable[[], datetime]) -> None:
        self._engine = engine
        self.source = source
        self._clock = clock

    def note(self, refs: Sequence[ObjectRef]) -> int:
        """Queue objects to fetch; one already queued stays one. Returns how many are new."""
        added = 0
        with unit(self._engine) as conn:
            for ref in dict.fromkeys(refs):
                if self._queued(conn, ref):
                    continue
                conn.execute(insert(pending).values(source=self.source,
                                                    object_type=ref.object_type,
                                                    object_id=ref.object_id,
                                                    noted_at=self._clock()))
                added += 1
        return added

    def _queued(self, conn: Connection, ref: ObjectRef) -> bool:
        return conn.execute(select(pending.c.object_id).where(
            pending.c.source == self.source, pending.c.object_type == ref.object_type,
            pending.c.object_id == ref.object_id)).first() is not None

    def queued(self, limit: int) -> list[ObjectRef]:
        """The oldest `limit` queued objects."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(pending.c.object_type, pending.c.object_id)
                                .where(pending.c.source == self.source)
                                .order_by(pending.c.noted_at, pending.c.object_type,
                                          pending.c.object_id).limit(limit)).all()
        return [ObjectRef(str(t), str(i)) for t, i in rows]

    def waiting(self) -> int:
        """How many objects wait to be read."""
        with self._engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(pending)
                                    .where(pending.c.source == self.source)).scalar_one())

    def done(self, refs: Sequence[ObjectRef]) -> None:
        with unit(self._engine) as conn:
            for ref in refs:
                conn.execute(delete(pending).where(
                    pending.c.source == self.source, pending.c.object_type == ref.object_type,
                    pending.c.object_id == ref.object_id))

    def number(self, ref: ObjectRef, fingerprint: str,
               modified_at: datetime | None) -> Numbered:
        """The version of this state of `ref` (see the module's rules)."""
        with unit(self._engine) as conn:
            latest = conn.execute(select(versions.c.version, versions.c.fingerprint,
                                         versions.c.modified_at).where(
                versions.c.source == self.source, versions.c.object_type == ref.object_type,
                versions.c.object_id == ref.object_id)
                .order_by(versions.c.version.desc()).limit(1)).first()
            if latest is not None and latest.fingerprint == fingerprint:
                return Numbered(int(latest.version), duplicate=True)
            if (latest is not None and latest.modified_at is not None
                    and modified_at is not None and modified_at < latest.modified_at):
                return Numbered(None, duplicate=False)
            version = 1 if latest is None else int(latest.version) + 1
            conn.execute(insert(versions).values(
                source=self.source, object_type=ref.object_type, object_id=ref.object_id,
                version=version, fingerprint=fingerprint, modified_at=modified_at))
        return Numbered(version, duplicate=False)
