"""Summary members: which deliveries a summary journal covers, written before it is sent.

Rules:
- A delivery belongs to at most one summary at a time (unique `delivery_id`); the rows are
  written in their own transaction before the summary goes to the ERP, so that after a
  crash the same members rebuild the same summary under the same key.
- A summary that never reached the ERP may be dissolved (its rows deleted) so that its
  members can join another; one that did stays, and its members' receipts point at it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import Connection, delete, insert, select

from finsync.storage.schema import summary_members


def record(conn: Connection, key: str, members: Sequence[tuple[int, str]]) -> None:
    """`members` are (delivery id, document id)."""
    conn.execute(insert(summary_members), [
        {"summary_key": key, "delivery_id": d, "document_id": doc} for d, doc in members])


def summaries_of(conn: Connection, delivery_ids: Collection[int]) -> dict[int, str]:
    if not delivery_ids:
        return {}
    rows = conn.execute(select(summary_members.c.delivery_id, summary_members.c.summary_key)
                        .where(summary_members.c.delivery_id.in_(list(delivery_ids))))
    return {int(d): str(k) for d, k in rows}


def members(conn: Connection, keys: Collection[str]) -> dict[str, list[tuple[int, str]]]:
    found: dict[str, list[tuple[int, str]]] = {k: [] for k in keys}
    if keys:
        rows = conn.execute(select(summary_members).where(
            summary_members.c.summary_key.in_(list(keys))).order_by(
            summary_members.c.delivery_id)).mappings()
        for r in rows:
            found[r["summary_key"]].append((int(r["delivery_id"]), str(r["document_id"])))
    return found


def dissolve(conn: Connection, keys: Collection[str]) -> None:
    if keys:
        conn.execute(delete(summary_members).where(
            summary_members.c.summary_key.in_(list(keys))))
