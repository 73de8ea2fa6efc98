"""Cross-references: a canonical id and the id it has in every system."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, and_, bindparam, insert, or_, select

from finsync.domain.refs import ReferenceConflictError
from finsync.storage import arrays
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


Link = tuple[str, str, str, str, str | None]  # canonical id, object type, system, external
#                                             id, event id


def conflicts(conn: Connection, links: Sequence[Link]) -> tuple[set[int], set[int]]:
    """For a batch of `link`s, with two set-based look-ups: the indexes of links that need
    `link` itself (it would refuse them with `ReferenceConflictError`, or the batch holds
    another link of the same canonical id and system, or of the same external id, and it is
    not recorded already with this very id), and the
    indexes of the others that are new (to insert; the rest are recorded already)."""
    if not links:
        return set(), set()
    known = {(str(c), str(sy)): str(e) for c, sy, e in conn.execute(
        select(cross_refs.c.canonical_id, cross_refs.c.system, cross_refs.c.external_id)
        .where(arrays.one_of(conn, cross_refs.c.canonical_id, sorted({ln[0] for ln in links}))))}
    groups: dict[tuple[str, str], set[str]] = {}
    for _, object_type, system, external_id, _ in links:
        groups.setdefault((system, object_type), set()).add(external_id)
    # Per (system, object type), so that the unique index on the three serves it.
    owners = {(str(sy), str(t), str(e)): str(c) for c, t, sy, e in conn.execute(
        select(cross_refs.c.canonical_id, cross_refs.c.object_type, cross_refs.c.system,
               cross_refs.c.external_id)
        .where(or_(*(and_(cross_refs.c.system == system, cross_refs.c.object_type == kind,
                          arrays.one_of(conn, cross_refs.c.external_id, sorted(ids)))
                     for (system, kind), ids in sorted(groups.items())))))}
    by_canonical = Counter((ln[0], ln[2]) for ln in links)
    by_external = Counter((ln[2], ln[1], ln[3]) for ln in links)
    alone: set[int] = set()
    new: set[int] = set()
    for index, (canonical_id, object_type, system, external_id, _) in enumerate(links):
        repeated = (by_canonical[(canonical_id, system)] > 1
                    or by_external[(system, object_type, external_id)] > 1)
        found = known.get((canonical_id, system))
        owner = owners.get((system, object_type, external_id))
        if found is not None:  # recorded: `link` does nothing however often it is named
            if found != external_id:
                alone.add(index)
        elif repeated or owner is not None:
            alone.add(index)
        else:
            new.add(index)
    return alone, new


def insert_many(conn: Connection, links: Sequence[Link], at: datetime) -> None:
    """Insert links `conflicts` found new, in one statement (`storage.arrays`)."""
    arrays.insert_rows(conn, cross_refs, _LINK_COLUMNS, links, {"created_at": at})


_LINK_COLUMNS = ("canonical_id", "object_type", "system", "external_id", "event_id")


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
