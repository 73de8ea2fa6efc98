"""The exception queue's table: every problem finance must see, with money at stake.

An exception has a fingerprint (what went wrong, where); opening the same fingerprint again
updates the open exception instead of adding a second one.

Refusals aggregate (`open_aggregated`): one exception per source and cause counts its
`occurrences` and names at most `OBJECTS_MAX` of the raw events it stands for; once resolved
or ignored, the next occurrence reopens it as a new episode (count and objects start again).
A NUL in a summary or detail (PostgreSQL's text cannot hold it) is escaped.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    case,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)

from finsync.domain.errors import ExceptionClass
from finsync.domain.money import CURRENCY_EXPONENTS, Money
from finsync.domain.status import UNRESOLVED, ExceptionStatus, RawStatus
from finsync.storage import arrays, jsonutil
from finsync.storage.schema import events, exceptions, raw_events
from finsync.storage.text import error_text

OBJECTS_MAX = 100  # object refs an aggregated exception names; `occurrences` counts them all


@dataclass(frozen=True, slots=True)
class NewException:
    exception_class: ExceptionClass
    fingerprint: str
    summary: str
    correlation_id: str | None = None
    objects: Sequence[str] = ()
    amount: Money | None = None
    event_id: str | None = None
    raw_event_id: int | None = None
    delivery_id: int | None = None
    detail: str | None = None
    # Or RETRYING: a transient cause the hub is retrying by itself.
    status: ExceptionStatus = ExceptionStatus.OPEN


def open_exception(conn: Connection, new: NewException, at: datetime) -> int:
    row = conn.execute(select(exceptions.c.id, exceptions.c.status)
                       .where(exceptions.c.fingerprint == new.fingerprint)).first()
    values = {
        "class": new.exception_class.value, "summary": error_text(new.summary),
        "detail": error_text(new.detail),
        "correlation_id": new.correlation_id, "objects": jsonutil.dumps(list(new.objects)),
        "amount_minor": None if new.amount is None else new.amount.quantize().to_minor(),
        "currency": None if new.amount is None else new.amount.currency,
        "event_id": new.event_id, "raw_event_id": new.raw_event_id,
        "delivery_id": new.delivery_id, "updated_at": at, "status": new.status,
        "resolved_at": None,
    }
    if row is not None:
        conn.execute(update(exceptions).where(exceptions.c.id == row[0]).values(values))
        return int(row[0])
    return int(conn.execute(insert(exceptions).returning(exceptions.c.id).values(
        fingerprint=new.fingerprint, opened_at=at, **values)).scalar_one())


def open_aggregated(conn: Connection, new: NewException, at: datetime) -> int:
    """Open the exception of `new.fingerprint`, or count one more occurrence of it: the
    summary, detail and raw event become `new`'s, its objects are added (up to
    `OBJECTS_MAX`). An occurrence reopens a retrying exception (something new to look at)
    but leaves one awaiting approval as it is; a resolved or ignored one opens afresh."""
    row = conn.execute(select(exceptions.c.id, exceptions.c.status, exceptions.c.objects)
                       .where(exceptions.c.fingerprint == new.fingerprint)).first()
    if row is None or row.status not in UNRESOLVED:
        exception_id = open_exception(conn, new, at)
        conn.execute(update(exceptions).where(exceptions.c.id == exception_id)
                     .values(occurrences=1))
        return exception_id
    named = [str(ref) for ref in jsonutil.loads(row.objects)]
    named += [ref for ref in new.objects if ref not in named]
    status = row.status
    if status == ExceptionStatus.RETRYING:
        status = ExceptionStatus.OPEN
    values: dict[str, Any] = {
        "summary": error_text(new.summary), "detail": error_text(new.detail),
        "updated_at": at,
        "objects": jsonutil.dumps(named[:OBJECTS_MAX]), "status": status,
        "occurrences": exceptions.c.occurrences + 1}
    if new.raw_event_id is not None:
        values["raw_event_id"] = new.raw_event_id
    conn.execute(update(exceptions).where(exceptions.c.id == row.id).values(values))
    return int(row.id)



def close(conn: Connection, exception_id: int, status: ExceptionStatus, note: str,
          at: datetime) -> None:
    conn.execute(update(exceptions).where(exceptions.c.id == exception_id).values(
        status=status, resolution_note=note, resolved_at=at, updated_at=at))


def resolve_by_fingerprint(conn: Connection, fingerprint: str, note: str,
                           at: datetime) -> list[dict[str, Any]]:
    """Resolve the unresolved exception with this fingerprint; returns what was resolved."""
    found = conn.execute(select(exceptions.c.id, exceptions.c.correlation_id,
                                exceptions.c.status).where(
        exceptions.c.fingerprint == fingerprint,
        exceptions.c.status.in_(UNRESOLVED))).mappings().all()
    if found:
        conn.execute(update(exceptions).where(exceptions.c.id.in_([r["id"] for r in found]))
                     .values(status=ExceptionStatus.RESOLVED, resolution_note=note, resolved_at=at,
                             updated_at=at))
    return [dict(r) for r in found]


def resolve_remapped(conn: Connection, at: datetime) -> int:
    """Resolve every exception on a raw event that finance sent to be mapped again
    (`retrying`, no delivery) once that raw event has been mapped; returns how many.
    A raw event that fails again reopens its exception through `open_aggregated` or opens
    a new one, so only a mapping that went through resolves here."""
    remapped = select(exceptions.c.id, exceptions.c.raw_event_id).join(
        raw_events, raw_events.c.id == exceptions.c.raw_event_id).where(
        exceptions.c.status == ExceptionStatus.RETRYING,
        exceptions.c.delivery_id.is_(None), raw_events.c.status == RawStatus.MAPPED)
    found = conn.execute(remapped).all()
    for exception_id, raw_event_id in found:
        close(conn, exception_id, ExceptionStatus.RESOLVED,
              f"hub: raw event #{raw_event_id} mapped on retry", at)
    return len(found)


def unresolved_among(conn: Connection, fingerprints: Collection[str]) -> set[str]:
    """Which of these fingerprints have an unresolved exception (one look-up)."""
    if not fingerprints:
        return set()
    rows = conn.execute(select(exceptions.c.fingerprint).where(
        arrays.one_of(conn, exceptions.c.fingerprint, sorted(fingerprints)),
        exceptions.c.status.in_(UNRESOLVED)))
    return {str(f) for (f,) in rows}


def set_status(conn: Connection, exception_id: int, status: ExceptionStatus,
               at: datetime) -> None:
    conn.execute(update(exceptions).where(exceptions.c.id == exception_id).values(
        status=status, updated_at=at))


def get(conn: Connection, exception_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(exceptions).where(exceptions.c.id == exception_id)).mappings() \
        .first()
    return None if row is None else _public(dict(row))


def listing(conn: Connection, *, status: str | None = None,
            exception_class: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
    query = select(exceptions).order_by(exceptions.c.id).limit(limit)
    if status is not None:
        query = query.where(exceptions.c.status == status)
    if exception_class is not None:
        query = query.where(exceptions.c["class"] == exception_class)
    return [_public(dict(r)) for r in conn.execute(query).mappings()]


def _public(row: dict[str, Any]) -> dict[str, Any]:
    row["objects"] = jsonutil.loads(row["objects"])
    minor, currency = row.pop("amount_minor"), row.pop("currency")
    row["amount_at_stake"] = None if minor is None else str(Money.from_minor(minor, currency))
    return row


def counts(conn: Connection) -> dict[str, dict[str, int]]:
    rows = conn.execute(select(exceptions.c.status, exceptions.c["class"], func.count())
                        .group_by(exceptions.c.status, exceptions.c["class"]))
    result: dict[str, dict[str, int]] = {}
    for status, klass, n in rows:
        result.setdefault(str(status), {})[str(klass)] = int(n)
    return result


def unresolved_objects(conn: Connection,
                       excluding: ExceptionClass | None = None) -> dict[str, str]:
    """Object ref ("invoice:inv_1") → the oldest unresolved exception that names it (of
    any class but `excluding`)."""
    query = select(exceptions.c.id, exceptions.c["class"], exceptions.c.objects).where(
        exceptions.c.status.in_(UNRESOLVED)).order_by(exceptions.c.id)
    if excluding is not None:
        query = query.where(exceptions.c["class"] != excluding.value)
    rows = conn.execute(query)
    named: dict[str, str] = {}
    for exception_id, klass, objects in rows:
        for ref in jsonutil.loads(objects):
            named.setdefault(str(ref), f"exception {exception_id} ({klass})")
    return named


def unresolved_fingerprints(conn: Connection, prefix: str) -> list[str]:
    rows = conn.execute(select(exceptions.c.fingerprint).where(
        exceptions.c.fingerprint.startswith(prefix, autoescape=True),
        exceptions.c.status.in_(UNRESOLVED)))
    return [str(f) for (f,) in rows]


def at_stake_rows(conn: Connection, statuses: Collection[ExceptionStatus],
                  exception_class: ExceptionClass | None = None
                  ) -> list[tuple[str, str, str | None, int, int | None]]:
    """`(status, class, currency, count, minor units at stake)` of the exceptions in
    `statuses` (and of one class), summed in the database: no listing limit applies."""
    query = (select(exceptions.c.status, exceptions.c["class"], exceptions.c.currency,
                    func.count(), func.sum(exceptions.c.amount_minor))
             .where(exceptions.c.status.in_([s.value for s in statuses]))
             .group_by(exceptions.c.status, exceptions.c["class"], exceptions.c.currency))
    if exception_class is not None:
        query = query.where(exceptions.c["class"] == exception_class.value)
    return [(str(status), str(name), None if currency is None else str(currency), int(n),
             None if minor is None else int(minor))
            for status, name, currency, n, minor in conn.execute(query)]


def unresolved_at_stake_by_prefix(conn: Connection, exception_class: ExceptionClass,
                                  prefix: str) -> list[tuple[str | None, int, int | None]]:
    """`(currency, count, minor units at stake)` of the unresolved exceptions of a class
    whose fingerprint starts with `prefix`, summed in the database."""
    rows = conn.execute(select(exceptions.c.currency, func.count(),
                               func.sum(exceptions.c.amount_minor)).where(
        exceptions.c.fingerprint.startswith(prefix, autoescape=True),
        exceptions.c["class"] == exception_class.value, exceptions.c.status.in_(UNRESOLVED))
        .group_by(exceptions.c.currency).order_by(exceptions.c.currency))
    return [(None if currency is None else str(currency), int(n),
             None if minor is None else int(minor)) for currency, n, minor in rows]


def unresolved_at_stake_by_correlation(conn: Connection, correlation_ids: Collection[str]
                                       ) -> list[tuple[str, str | None, int, int | None]]:
    """`(correlation id, currency, count, minor units at stake)` of the unresolved
    exceptions of these correlation ids, summed in the database."""
    if not correlation_ids:
        return []
    rows = conn.execute(select(exceptions.c.correlation_id, exceptions.c.currency,
                               func.count(), func.sum(exceptions.c.amount_minor)).where(
        exceptions.c.correlation_id.in_(sorted(correlation_ids)),
        exceptions.c.status.in_(UNRESOLVED)).group_by(
        exceptions.c.correlation_id, exceptions.c.currency))
    return [(str(correlation), None if currency is None else str(currency), int(n),
             None if minor is None else int(minor)) for correlation, currency, n, minor in rows]


def latest_by_fingerprint(conn: Connection, fingerprints: Collection[str]
                          ) -> dict[str, tuple[int, ExceptionStatus]]:
    """Fingerprint -> (id, status) of its latest exception, for the fingerprints given."""
    wanted = sorted(set(fingerprints))
    if not wanted:
        return {}
    rows = conn.execute(select(exceptions.c.fingerprint, exceptions.c.id, exceptions.c.status)
                        .where(exceptions.c.fingerprint.in_(wanted))
                        .order_by(exceptions.c.id))
    return {str(f): (int(i), ExceptionStatus(s)) for f, i, s in rows}


def unresolved_by_prefix(conn: Connection, exception_class: ExceptionClass,
                         prefix: str) -> list[tuple[str, ExceptionStatus, str | None]]:
    """`(fingerprint, status, detail)` of the unresolved exceptions of a class whose
    fingerprint starts with `prefix`."""
    rows = conn.execute(select(exceptions.c.fingerprint, exceptions.c.status,
                               exceptions.c.detail).where(
        exceptions.c.fingerprint.startswith(prefix, autoescape=True),
        exceptions.c["class"] == exception_class.value, exceptions.c.status.in_(UNRESOLVED)))
    return [(str(f), ExceptionStatus(status), detail) for f, status, detail in rows]


# -- the queue: filtered, sorted by money at stake ---------------------------------------
# Amounts of every currency compared in thousandths of their major unit (the largest
# exponent here is 3): nominal amounts, never converted between currencies.
MILLI_EXPONENT = 3


@dataclass(frozen=True, slots=True)
class QueueQuery:
    """What the exception queue is filtered by. `entity`: a legal entity named by the
    exception's event (its document's `legal_entity`) or reconciliation break; `opened_*`:
    bounds of when it opened (its age); `amount_*`: bounds of the absolute money at stake
    in its own currency (an exception without an amount matches no amount bound)."""

    statuses: tuple[ExceptionStatus, ...]
    exception_class: ExceptionClass | None = None
    entity: str | None = None
    currency: str | None = None
    opened_before: datetime | None = None
    opened_after: datetime | None = None
    amount_min: Decimal | None = None
    amount_max: Decimal | None = None


def _magnitude() -> ColumnElement[Any]:
    """|money at stake| in thousandths of its currency's major unit (NULL: no amount)."""
    by_exponent: dict[int, list[str]] = {}
    for currency, places in CURRENCY_EXPONENTS.items():
        by_exponent.setdefault(places, []).append(currency)
    minor = func.abs(exceptions.c.amount_minor)
    whens = [(exceptions.c.currency.in_(sorted(names)),
              minor * 10 ** (MILLI_EXPONENT - places))
             for places, names in sorted(by_exponent.items())]
    return case(*whens, else_=minor)


def _milli(amount: Decimal, rounding: str) -> int:
    return int(amount.scaleb(MILLI_EXPONENT).to_integral_value(rounding))


def _queue_where(query: QueueQuery) -> list[ColumnElement[bool]]:
    c = exceptions.c
    where: list[ColumnElement[bool]] = [c.status.in_([s.value for s in query.statuses])]
    if query.exception_class is not None:
        where.append(c["class"] == query.exception_class.value)
    if query.currency is not None:
        where.append(c.currency == query.currency)
    if query.opened_before is not None:
        where.append(c.opened_at <= query.opened_before)
    if query.opened_after is not None:
        where.append(c.opened_at >= query.opened_after)
    if query.amount_min is not None:
        where.append(_magnitude() >= _milli(query.amount_min, ROUND_CEILING))
    if query.amount_max is not None:
        where.append(_magnitude() <= _milli(query.amount_max, ROUND_FLOOR))
    if query.entity is not None:
        where.append(_of_entity(query.entity))
    return where


def _of_entity(entity: str) -> ColumnElement[bool]:
    """A break of the entity (`recon:<entity>:...`), or an exception whose event's document
    names it (the stored payload is canonical JSON: sorted keys, no spaces)."""
    named = f'"legal_entity":{jsonutil.dumps(entity)}'
    # The event is looked up only for an exception that names one (no probe per break).
    return or_(exceptions.c.fingerprint.startswith(f"recon:{entity}:", autoescape=True),
               and_(exceptions.c.event_id.is_not(None),
                    exists(select(events.c.position).where(and_(
                        events.c.event_id == exceptions.c.event_id,
                        events.c.payload.contains(named, autoescape=True))))))


def queue(conn: Connection, query: QueueQuery, limit: int) -> list[dict[str, Any]]:
    """The exceptions `query` chooses, the most money at stake first (those without an
    amount last), then the oldest; at most `limit`."""
    magnitude = _magnitude()
    rows = conn.execute(select(exceptions).where(*_queue_where(query)).order_by(
        case((exceptions.c.amount_minor.is_(None), 1), else_=0), magnitude.desc(),
        exceptions.c.opened_at, exceptions.c.id).limit(limit)).mappings()
    return [_public(dict(r)) for r in rows]


def queue_totals(conn: Connection, query: QueueQuery
                 ) -> list[tuple[str, str, str | None, int, int | None]]:
    """`(status, class, currency, count, minor units at stake)` of every exception `query`
    chooses, summed in the database (no limit)."""
    c = exceptions.c
    rows = conn.execute(select(c.status, c["class"], c.currency, func.count(),
                               func.sum(c.amount_minor))
                        .where(*_queue_where(query)).group_by(c.status, c["class"], c.currency))
    return [(str(status), str(name), None if currency is None else str(currency), int(n),
             None if minor is None else int(minor))
            for status, name, currency, n, minor in rows]


def for_correlation(conn: Connection, correlation_id: str,
                    limit: int = 500) -> list[dict[str, Any]]:
    """The exceptions raised for one correlation id, oldest first (resolved ones too); the
    money at stake also as `at_stake` ({amount, currency}: a decimal string, or None)."""
    query = (select(exceptions).where(exceptions.c.correlation_id == correlation_id)
             .order_by(exceptions.c.id).limit(limit))
    found = []
    for r in conn.execute(query).mappings():
        minor, currency = r["amount_minor"], r["currency"]
        at_stake = None if minor is None else {
            "amount": str(Money.from_minor(minor, currency).amount), "currency": currency}
        found.append({**_public(dict(r)), "at_stake": at_stake})
    return found
