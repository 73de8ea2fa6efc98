"""A local mirror of a Stripe account's objects (`stripe_objects`), kept from what Stripe sends.

Rules:
- Every Stripe body the hub stores of a Stripe source is recorded here after the hub
  committed it: the poller's deliveries (the event's snapshot, the object fetched for it and
  every related object, list items one by one) and webhook events (the snapshot). A body that
  is not a Stripe event is left to the hub, which keeps it and opens its exception.
- One row per object: the newest copy wins, by the event's `created`; within one second, by
  how far the object's status has moved on (`STATUS_RANK`), then a copy fetched from the API
  over an event's snapshot, then the copy's digest. That is a total order, so recording the
  same copies again, or in another order, leaves the same rows (idempotent).
- A copy that is not a whole object (a thin event, a partial list page) is not recorded.
- Personal data is not kept (`PERSONAL`: names, e-mails, phones, addresses, tax ids,
  descriptions and metadata, at any depth): the books read none of it, and the payloads of
  record (`raw_events`) already hold it, redacted in every view. Of metadata, finsync's own
  marks are kept (`marks.kept`: the canonical ids the subscription platform wrote), which
  the books read to name a marked contract as the mapping does.
- `refresh` records an object as Stripe answers it now (`finsync stripe verify --update`):
  stamped with the time it was fetched, so only a later event replaces it.
- Reads (`objects`) run on the caller's connection (one snapshot for a whole report) and
  stream one source's objects of one type by id, in code-point order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    and_,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from finsync.connectors.stripe import marks
from finsync.connectors.stripe.delivery import Delivery, parse, snapshot
from finsync.connectors.stripe.objects import Obj, instant
from finsync.connectors.stripe.state import metadata, unit
from finsync.dbsnapshot import code_point_order, stream
from finsync.domain.errors import MappingError

objects_table = Table(
    "stripe_objects", metadata,
    Column("source", String(64), nullable=False),
    Column("object_type", String(64), nullable=False),
    Column("object_id", String(255), nullable=False),
    Column("created", BigInteger, nullable=False),  # the event's `created` (unix seconds)
    Column("rank", Integer, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("event_id", String(255), nullable=False),  # the event whose copy this is
    Column("body", Text, nullable=False),
    PrimaryKeyConstraint("source", "object_type", "object_id"),
)

# How far an object's status has moved on: of two copies stamped in the same second, the
# one further on is the newer (Stripe's lifecycles only move forward within a second).
STATUS_RANK: Mapping[str, Mapping[str, int]] = {
    "invoice": {"draft": 0, "open": 1, "uncollectible": 2, "paid": 3, "void": 3},
    "credit_note": {"issued": 0, "void": 1},
    "invoice_payment": {"open": 0, "paid": 1, "canceled": 1},
    "payment_intent": {"requires_payment_method": 0, "requires_confirmation": 1,
                       "requires_action": 2, "processing": 3, "requires_capture": 4,
                       "canceled": 5, "succeeded": 5},
    "charge": {"pending": 0, "succeeded": 1, "failed": 1},
    "refund": {"pending": 0, "requires_action": 0, "succeeded": 1, "failed": 1, "canceled": 1},
    "dispute": {"warning_needs_response": 0, "needs_response": 0, "warning_under_review": 1,
                "under_review": 1, "warning_closed": 2, "won": 2, "lost": 2},
}
FETCHED, SNAPSHOT = 1, 0
ID_MAX, TYPE_MAX = 255, 64  # the columns' widths
LIST_KEYS = ("lines", "items", "refunds")  # sub-lists that make a copy partial when cut


@dataclass(frozen=True, slots=True)
class Copy:
    """One copy of one object, stamped with the event (or fetch) it came with."""

    obj: Obj
    created: int
    event_id: str
    fetched: bool

    @property
    def object_type(self) -> str:
        return str(self.obj["object"])

    @property
    def object_id(self) -> str:
        return str(self.obj["id"])

    def body(self) -> str:
        return json.dumps(scrubbed(self.obj), sort_keys=True, separators=(",", ":"))

    def key(self) -> tuple[int, int, str]:
        """(created, rank, digest): the copy with the greater key is the newer."""
        status = STATUS_RANK.get(self.object_type, {}).get(str(self.obj.get("status")), 0)
        rank = status * 2 + (FETCHED if self.fetched else SNAPSHOT)
        return self.created, rank, hashlib.sha256(self.body().encode()).hexdigest()


PERSONAL = frozenset({
    "name", "email", "phone", "address", "shipping", "tax_ids", "metadata", "description",
    "customer_name", "customer_email", "customer_phone", "customer_address",
    "customer_shipping", "customer_tax_ids", "billing_details", "receipt_email",
    "statement_descriptor", "memo", "footer", "custom_fields", "evidence"})


def scrubbed(value: object) -> object:
    """`value` without its personal fields (`PERSONAL`), at any depth; of `metadata`, only
    finsync's marks are kept (`marks`: canonical ids, which the books read)."""
    if isinstance(value, Mapping):
        kept = {k: scrubbed(v) for k, v in value.items() if k not in PERSONAL}
        found = value.get("metadata")
        if isinstance(found, Mapping) and (own := marks.kept(found)):
            kept["metadata"] = own
        return kept
    if isinstance(value, list):
        return [scrubbed(v) for v in value]
    return value


def copies(delivery: Delivery) -> list[Copy]:
    """The whole objects one stored body carries (none from an event whose id or time
    no Stripe event has: a `MappingError`)."""
    stamp, event_id = delivery.created, delivery.id
    instant(stamp, "event.created")  # a time a calendar holds, so the column holds it
    if len(event_id) > ID_MAX or not _holdable(event_id):
        raise MappingError(f"event id of {len(event_id)} characters that a column cannot "
                           "hold", code="invalid_event")
    found = [Copy(snapshot(delivery.event), stamp, event_id, False)]
    if delivery.current is not None:
        found.append(Copy(delivery.current, stamp, event_id, True))
    for related in delivery.related.values():
        items = related.get("data") if related.get("object") == "list" else [related]
        found += [Copy(item, stamp, event_id, True) for item in items or ()
                  if isinstance(item, Mapping)]
    return [c for c in found if _whole(c.obj)]


def _holdable(text: str) -> bool:
    """Whether a text column holds `text`: PostgreSQL refuses NUL, and no UTF-8 column holds
    a lone surrogate."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def _whole(obj: Obj) -> bool:
    ident, kind = obj.get("id"), obj.get("object")
    if not isinstance(ident, str) or not isinstance(kind, str):
        return False
    held = 0 < len(ident) <= ID_MAX and 0 < len(kind) <= TYPE_MAX
    if not held or not _holdable(ident) or not _holdable(kind):
        return False  # no Stripe object: its columns could not hold it
    if set(obj) <= {"id", "object"} or obj.get("deleted") is True:
        return False
    return not any(isinstance(obj.get(k), Mapping) and obj[k].get("has_more")
                   for k in LIST_KEYS)


class Mirror:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def record(self, source: str, bodies: Sequence[bytes]) -> int:
        """Record the objects of stored bodies of `source`; returns how many rows changed."""
        found: list[Copy] = []
        for body in bodies:
            try:
                found += copies(parse(body))
            except MappingError:
                continue  # not a Stripe event: the hub keeps it and opens its exception
        return self._write(source, found)

    def refresh(self, source: str, obj: Obj, fetched_at: int) -> int:
        """Record `obj` as Stripe answered it at `fetched_at` (unix seconds)."""
        copy = Copy(obj, fetched_at, f"fetch:{fetched_at}", True)
        return self._write(source, [copy] if _whole(obj) else [])

    def _write(self, source: str, found: Sequence[Copy]) -> int:
        newest: dict[tuple[str, str], Copy] = {}
        for copy in found:
            ident = (copy.object_type, copy.object_id)
            if ident not in newest or copy.key() > newest[ident].key():
                newest[ident] = copy
        changed = 0
        with unit(self._engine) as conn:
            for copy in newest.values():
                changed += _upsert(conn, source, copy)
        return changed


def _upsert(conn: Connection, source: str, copy: Copy) -> int:
    """Insert the copy, or replace a held copy that is older (compare-and-set in one
    statement each, so two writers at once keep the newer copy, never the last writer's)."""
    t = objects_table
    created, rank, digest = copy.key()
    values = {"created": created, "rank": rank, "digest": digest, "event_id": copy.event_id,
              "body": copy.body()}
    ident = {"source": source, "object_type": copy.object_type, "object_id": copy.object_id}
    inserted = conn.execute(_insert_new(conn).values(**ident, **values)
                            .returning(t.c.object_id)).first()
    if inserted is not None:  # (rowcount is not reliable here on every driver)
        return 1
    digest_order = code_point_order(conn, t.c.digest)  # as Python compares the digests
    older = or_(t.c.created < created,
                and_(t.c.created == created, t.c.rank < rank),
                and_(t.c.created == created, t.c.rank == rank, digest_order < digest))
    return int(conn.execute(update(t).where(
        t.c.source == source, t.c.object_type == copy.object_type,
        t.c.object_id == copy.object_id, older).values(values)).rowcount)


def _insert_new(conn: Connection) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that does nothing when the object is held already."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(objects_table).on_conflict_do_nothing()
    return sqlite.insert(objects_table).on_conflict_do_nothing()


def objects(conn: Connection, source: str, object_type: str) -> Generator[Obj, None, None]:
    """`source`'s mirrored objects of `object_type`, by id in code-point order."""
    t = objects_table
    query = (select(t.c.body).where(t.c.source == source, t.c.object_type == object_type)
             .order_by(code_point_order(conn, t.c.object_id)))
    for (body,) in stream(conn, query):
        yield json.loads(body)


def held(conn: Connection, source: str) -> Iterator[tuple[str, str, int]]:
    """(object type, id, created stamp) of every mirrored object of `source`, by type and id."""
    t = objects_table
    query = (select(t.c.object_type, t.c.object_id, t.c.created).where(t.c.source == source)
             .order_by(t.c.object_type, code_point_order(conn, t.c.object_id)))
    for object_type, object_id, created in stream(conn, query):
        yield str(object_type), str(object_id), int(created)
