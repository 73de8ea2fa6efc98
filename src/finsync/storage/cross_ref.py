"""Cross-references: a canonical id and the id it has in every system."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, bindparam, insert, select

from finsync.domain.refs import ReferenceConflictError
from finsync.storage.schema import cross_refs

_KNOWN = select(cross_refs.c.external_id).where(
    cross_refs.c.canonical_id == bindparam("b_canonical_id"),
    cross_refs.c.system == bindparam("b_system"))
_INSERT = insert(cross_refs)


def link(conn: Connection, canonical_id: str, object_type: str, system: str, external_id: str,
         event_id: str | None, at: datetime) -> bool:
    """Record a reference once; returns True when it is new. A different id is a conflict."""
    known = conn.execute(_KNOWN, {"b_canonical_id": canonical_id, "b_system": system}
                         ).scalar_one_or_none()
    if known is not None:
        if known != external_id:
            raise ReferenceConflictError(
                f"{canonical_id} is {known!r} in {system}; a new id {external_id!r} came back")
        return False
    owner = resolve(conn, system, object_type, external_id)
    if owner is not None:
        raise ReferenceConflictError(
            f"{system} {object_type} {external_id!r} already stands for {owner}, "
            f"not {canonical_id}")
    conn.execute(_INSERT, {"canonical_id": canonical_id, "object_type": object_type,
                           "system": system, "external_id": external_id, "event_id": event_id,
                           "created_at": at})
    return True


def refs_of(conn: Connection, canonical_id: str) -> dict[str, str]:
    rows = conn.execute(select(cross_refs.c.system, cross_refs.c.external_id)
                        .where(cross_refs.c.canonical_id == canonical_id))
    return {str(s): str(e) for s, e in rows}


def resolve(conn: Connection, system: str, object_type: str, external_id: str) -> str | None:
    row = conn.execute(select(cross_refs.c.canonical_id).where(
        cross_refs.c.system == system, cross_refs.c.object_type == object_type,
        cross_refs.c.external_id == external_id)).first()
    return None if row is None else str(row[0])


def all_rows(conn: Connection) -> list[tuple[str, str, str, str]]:
    rows = conn.execute(select(cross_refs.c.canonical_id, cross_refs.c.object_type,
                               cross_refs.c.system, cross_refs.c.external_id)
                        .order_by(cross_refs.c.canonical_id, cross_refs.c.system))
    return [(str(a), str(b), str(c), str(d)) for a, b, c, d in rows]
