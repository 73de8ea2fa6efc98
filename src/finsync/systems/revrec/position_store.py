"""The position rows of the revenue engine in SQL: written with the state, read in sets.

Rules:
- The rows are written by `position_write.write`, with the state, in its transaction.
- A contract without rows (`contract_positions` gave None) has a NULL span: every read
  reports it as not held (`Stored.held` False) and the caller computes it from its state.
- The position of a contract at month start d is the row at min(d, positions_to), none
  (zero) before positions_from (see `position`); one join per read, on the primary key.
- Entity sums (`recognised_by_currency`, `recognised_by_month`) add in SQL: per contract
  the row at the day, and for contracts whose span ended before it, their last row.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Date,
    and_,
    case,
    func,
    literal,
    not_,
    or_,
    select,
)

from finsync.dbsnapshot import code_point_order, stream
from finsync.systems.revrec import tables as t
from finsync.systems.revrec.position import PositionRow, is_month_start
from finsync.systems.revrec.serial import loads_state
from finsync.systems.revrec.state import RevenueContractState

c, p = t.contracts, t.positions
CHUNK = 500  # ids per IN list


@dataclass(frozen=True, slots=True)
class Stored:
    """One contract as the rows hold it at a day; `row` None means zero (before its span)
    or, when `held` is False, not known from rows."""

    revenue_contract_id: str
    subscription_contract_id: str
    customer_id: str
    currency: str
    transaction_price_minor: int | None
    positions_from: date | None
    positions_to: date | None
    row: PositionRow | None

    def held(self, day: date) -> bool:
        """Whether the rows answer `day` exactly (a month start, or outside the span)."""
        if self.positions_from is None or self.positions_to is None:
            return False
        return (is_month_start(day) or day < self.positions_from
                or day >= self.positions_to)


def _target(day: date) -> ColumnElement[Any]:
    """The row day that answers `day`: the day itself, or the span's last if it ended."""
    return case((c.c.positions_to < day, c.c.positions_to), else_=literal(day, Date))


def stored_at(conn: Connection, legal_entity: str, day: date,
              subscription_contract_id: str | None = None) -> list[Stored]:
    """Every contract of the entity (or the one named) with its row at `day`, in id order."""
    on = and_(p.c.revenue_contract_id == c.c.id, p.c.day == _target(day),
              c.c.positions_from <= day)
    query = select(
        c.c.id, c.c.subscription_contract_id, c.c.customer_id, c.c.currency,
        c.c.transaction_price_minor, c.c.positions_from, c.c.positions_to, p.c.day,
        p.c.billed_minor, p.c.recognised_minor, p.c.deferred_revenue_minor,
        p.c.contract_asset_minor, p.c.unbilled_receivable_minor,
    ).select_from(c.outerjoin(p, on)).order_by(c.c.id)
    if subscription_contract_id is None:
        query = query.where(c.c.legal_entity == legal_entity)
    else:
        query = query.where(c.c.subscription_contract_id == subscription_contract_id)
    found = []
    for r in conn.execute(query):
        row = None if r.day is None else PositionRow(
            r.day, r.billed_minor, r.recognised_minor, r.deferred_revenue_minor,
            r.contract_asset_minor, r.unbilled_receivable_minor, ())
        found.append(Stored(r.id, r.subscription_contract_id, r.customer_id or "", r.currency,
                            r.transaction_price_minor, r.positions_from, r.positions_to, row))
    return found


@dataclass(frozen=True, slots=True)
class StoredMovement:
    """One contract's movement between two days in minor units (debits positive, revenue
    as recognised), or `held` False when the rows do not answer both days."""

    revenue_contract_id: str
    currency: str
    held: bool
    revenue: int = 0
    deferred_revenue: int = 0
    contract_asset: int = 0
    unbilled_receivable: int = 0


def movements(conn: Connection, legal_entity: str, start: date,
              end: date) -> list[StoredMovement]:
    """Every contract of the entity with its movement from `start` to `end`, in id order,
    subtracted in SQL from the rows at the two days (as `journal.movement_between`)."""
    o, e = p.alias("opening"), p.alias("closing")
    zero = literal(0)

    def joined(row: Any, day: date) -> Any:
        return and_(row.c.revenue_contract_id == c.c.id, row.c.day == _target(day),
                    c.c.positions_from <= day)

    def change(column: str) -> Any:
        return (func.coalesce(e.c[column], zero) - func.coalesce(o.c[column], zero))

    query = select(
        c.c.id, c.c.currency, c.c.positions_from, c.c.positions_to,
        change("recognised_minor").label("revenue"),
        (change("billed_minor") - change("deferred_revenue_minor")).label("deferred"),
        change("contract_asset_minor").label("asset"),
        change("unbilled_receivable_minor").label("unbilled"),
    ).select_from(c.outerjoin(o, joined(o, start)).outerjoin(e, joined(e, end))).where(
        c.c.legal_entity == legal_entity).order_by(c.c.id)
    found = []
    for r in conn.execute(query):
        ends = Stored(r.id, "", "", r.currency, None, r.positions_from, r.positions_to, None)
        if not (ends.held(start) and ends.held(end)):
            found.append(StoredMovement(r.id, r.currency, held=False))
            continue
        found.append(StoredMovement(r.id, r.currency, True, int(r.revenue), int(r.deferred),
                                    int(r.asset), int(r.unbilled)))
    return found


def contract_ids(conn: Connection, legal_entity: str, after: str | None = None,
                 limit: int | None = None) -> list[str]:
    """The entity's contract ids in id order: those after `after`, at most `limit` (a
    page at a time, so that a reader of the whole book never holds every id)."""
    query = select(c.c.id).where(c.c.legal_entity == legal_entity).order_by(c.c.id)
    if after is not None:
        query = query.where(c.c.id > after)
    return list(conn.execute(query.limit(limit)).scalars())


def stored_over(conn: Connection, ids: Sequence[str],
                days: Sequence[date]) -> dict[str, dict[date, Stored]]:
    """The named contracts with their rows at each of `days`, in one read: the rows at
    those days and at each span's end (which answers every day after it)."""
    wanted = sorted(set(days))
    on = and_(p.c.revenue_contract_id == c.c.id,
              or_(p.c.day.in_(wanted), p.c.day == c.c.positions_to))
    query = select(
        c.c.id, c.c.subscription_contract_id, c.c.customer_id, c.c.currency,
        c.c.transaction_price_minor, c.c.positions_from, c.c.positions_to, p.c.day,
        p.c.billed_minor, p.c.recognised_minor, p.c.deferred_revenue_minor,
        p.c.contract_asset_minor, p.c.unbilled_receivable_minor,
    ).select_from(c.outerjoin(p, on)).where(c.c.id.in_(list(ids)))
    rows: dict[str, dict[date, PositionRow]] = defaultdict(dict)
    heads: dict[str, Any] = {}
    for r in conn.execute(query):
        heads[r.id] = r
        if r.day is not None:
            rows[r.id][r.day] = PositionRow(
                r.day, r.billed_minor, r.recognised_minor, r.deferred_revenue_minor,
                r.contract_asset_minor, r.unbilled_receivable_minor, ())
    found: dict[str, dict[date, Stored]] = {}
    for rc, r in heads.items():
        first, last = r.positions_from, r.positions_to
        mine = rows.get(rc, {})
        found[rc] = {day: Stored(
            rc, r.subscription_contract_id, r.customer_id or "", r.currency,
            r.transaction_price_minor, first, last,
            None if first is None or last is None or day < first else mine.get(min(day, last)))
            for day in wanted}
    return found


def credits_of(conn: Connection, ids: Sequence[str]
               ) -> dict[str, list[tuple[str, date, int]]]:
    """The named contracts' credits (negative billings): (document, issued on, minor)."""
    b = t.billings
    found: dict[str, list[tuple[str, date, int]]] = defaultdict(list)
    for rc, document, issued_on, amount in conn.execute(
            select(b.c.revenue_contract_id, b.c.document_id, b.c.issued_on, b.c.amount_minor)
            .where(b.c.revenue_contract_id.in_(list(ids)), b.c.amount_minor < 0)
            .order_by(b.c.revenue_contract_id, b.c.seq)):
        found[rc].append((document, issued_on, amount))
    return found


def credits(conn: Connection, legal_entity: str,
            day: date) -> dict[str, tuple[tuple[str, int], ...]]:
    """Per contract, the credits (negative billings) issued before `day`, by document, as
    positive minor units, in document order."""
    b = t.billings
    rows = conn.execute(
        select(b.c.revenue_contract_id, b.c.document_id, func.sum(b.c.amount_minor))
        .join(c, c.c.id == b.c.revenue_contract_id)
        .where(c.c.legal_entity == legal_entity, b.c.amount_minor < 0, b.c.issued_on < day)
        .group_by(b.c.revenue_contract_id, b.c.document_id)
        .order_by(b.c.revenue_contract_id, b.c.document_id))
    found: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for rc, document, amount in rows:
        found[rc].append((document, -int(amount)))
    return {rc: tuple(items) for rc, items in found.items()}


def references(conn: Connection, legal_entity: str) -> dict[str, tuple[str, ...]]:
    """Per contract, its schedules' versioned references (`sch_…@vN`) in obligation order."""
    o = t.obligations
    rows = conn.execute(
        select(o.c.revenue_contract_id, o.c.schedule_id, o.c.version)
        .join(c, c.c.id == o.c.revenue_contract_id)
        .where(c.c.legal_entity == legal_entity)
        .order_by(o.c.revenue_contract_id, o.c.ordinal))
    found: dict[str, list[str]] = defaultdict(list)
    for rc, schedule_id, version in rows:
        found[rc].append(f"{schedule_id}@v{version}")
    return {rc: tuple(refs) for rc, refs in found.items()}


def obligation_rows(conn: Connection, revenue_contract_id: str
                    ) -> tuple[list[str], dict[int, dict[date, int]]]:
    """One contract's obligation ids (by ordinal) and their recognised revenue per day."""
    o, op = t.obligations, t.obligation_positions
    ids = list(conn.execute(select(o.c.obligation_id).where(
        o.c.revenue_contract_id == revenue_contract_id).order_by(o.c.ordinal)).scalars())
    per: dict[int, dict[date, int]] = defaultdict(dict)
    for ordinal, day, amount in conn.execute(
            select(op.c.ordinal, op.c.day, op.c.recognised_minor)
            .where(op.c.revenue_contract_id == revenue_contract_id)):
        per[ordinal][day] = amount
    return ids, per


def recognised_by_currency(conn: Connection, legal_entity: str, day: date) -> dict[str, int]:
    """Revenue recognised before the month start `day` over the entity's held contracts."""
    on = and_(p.c.revenue_contract_id == c.c.id, p.c.day == _target(day))
    rows = conn.execute(
        select(c.c.currency, func.sum(p.c.recognised_minor)).select_from(c.join(p, on))
        .where(c.c.legal_entity == legal_entity, c.c.positions_from <= day)
        .group_by(c.c.currency))
    return {currency: int(amount) for currency, amount in rows}


def transaction_prices(conn: Connection, legal_entity: str) -> dict[str, int]:
    rows = conn.execute(
        select(c.c.currency, func.sum(c.c.transaction_price_minor))
        .where(c.c.legal_entity == legal_entity, c.c.positions_from.is_not(None))
        .group_by(c.c.currency))
    return {currency: int(amount) for currency, amount in rows}


def recognised_by_month(conn: Connection, legal_entity: str,
                        days: Sequence[date]) -> dict[date, dict[str, int]]:
    """Revenue recognised before each month start of `days` (ascending), per currency, over
    the held contracts, in two passes: the rows at those days, and each ended contract's
    last row carried forward."""
    first, final = days[0], days[-1]
    at = conn.execute(
        select(p.c.day, c.c.currency, func.sum(p.c.recognised_minor))
        .join(c, c.c.id == p.c.revenue_contract_id)
        .where(c.c.legal_entity == legal_entity, p.c.day >= first, p.c.day <= final)
        .group_by(p.c.day, c.c.currency))
    sums: dict[date, dict[str, int]] = {d: defaultdict(int) for d in days}
    for day, currency, amount in at:
        if day in sums:
            sums[day][currency] += int(amount)
    ended = conn.execute(
        select(c.c.positions_to, c.c.currency, func.sum(p.c.recognised_minor))
        .select_from(c.join(p, and_(p.c.revenue_contract_id == c.c.id,
                                    p.c.day == c.c.positions_to)))
        .where(c.c.legal_entity == legal_entity, c.c.positions_to < final)
        .group_by(c.c.positions_to, c.c.currency))
    for last, currency, amount in ended:
        for day in days:
            if last < day:
                sums[day][currency] += int(amount)
    return {d: dict(v) for d, v in sums.items()}


BALANCE_COLUMNS = ("billed_minor", "recognised_minor", "deferred_revenue_minor",
                   "contract_asset_minor", "unbilled_receivable_minor")


def balances_by_day(conn: Connection, legal_entity: str,
                    days: Sequence[date]) -> dict[date, dict[str, tuple[int, ...]]]:
    """The held contracts' balances (`BALANCE_COLUMNS`) summed per currency at each month
    start of `days` (ascending), as `recognised_by_month` sums revenue: the rows at those
    days, and each ended contract's last row carried forward."""
    final = days[-1]
    columns = [func.sum(p.c[name]) for name in BALANCE_COLUMNS]
    sums: dict[date, dict[str, list[int]]] = {d: {} for d in days}

    def add(day: date, currency: str, amounts: Sequence[Any]) -> None:
        held = sums[day].setdefault(currency, [0] * len(BALANCE_COLUMNS))
        for i, amount in enumerate(amounts):
            held[i] += int(amount)

    for day, currency, *amounts in conn.execute(
            select(p.c.day, c.c.currency, *columns)
            .join(c, c.c.id == p.c.revenue_contract_id)
            .where(c.c.legal_entity == legal_entity, p.c.day.in_(list(days)))
            .group_by(p.c.day, c.c.currency)):
        add(day, currency, amounts)
    ended = conn.execute(
        select(c.c.positions_to, c.c.currency, *columns)
        .select_from(c.join(p, and_(p.c.revenue_contract_id == c.c.id,
                                    p.c.day == c.c.positions_to)))
        .where(c.c.legal_entity == legal_entity, c.c.positions_to < final)
        .group_by(c.c.positions_to, c.c.currency))
    for last, currency, *amounts in ended:
        for day in days:
            if last < day:
                add(day, currency, amounts)
    return {d: {cur: tuple(v) for cur, v in per.items()} for d, per in sums.items()}


def credits_issued(conn: Connection, legal_entity: str, start: date,
                   end: date) -> list[tuple[date, str, int]]:
    """Credits (negative billings) of the held contracts issued in `[start, end)`: (day,
    currency, positive minor units) per day and currency."""
    b = t.billings
    rows = conn.execute(
        select(b.c.issued_on, c.c.currency, func.sum(b.c.amount_minor))
        .join(c, c.c.id == b.c.revenue_contract_id)
        .where(c.c.legal_entity == legal_entity, b.c.amount_minor < 0,
               b.c.issued_on >= start, b.c.issued_on < end)
        .group_by(b.c.issued_on, c.c.currency))
    return [(day, currency, -int(amount)) for day, currency, amount in rows]


def contract_heads(conn: Connection, legal_entity: str, after: str,
                   limit: int) -> list[tuple[str, str, str, str, int]]:
    """The entity's contracts in id order after `after`, at most `limit`, without their
    states: (revenue contract, subscription contract, customer, currency, version)."""
    rows = conn.execute(
        select(c.c.id, c.c.subscription_contract_id, c.c.customer_id, c.c.currency,
               c.c.contract_version)
        .where(c.c.legal_entity == legal_entity, c.c.id > after)
        .order_by(c.c.id).limit(limit))
    return [(r.id, r.subscription_contract_id, r.customer_id or "", r.currency,
             int(r.contract_version)) for r in rows]


def unheld(conn: Connection, legal_entity: str, day: date) -> list[str]:
    """Ids of the entity's contracts that the rows do not answer at `day`."""
    inside = and_(c.c.positions_from < day, c.c.positions_to > day)
    query = select(c.c.id).where(c.c.legal_entity == legal_entity)
    if is_month_start(day):
        query = query.where(c.c.positions_from.is_(None))
    else:
        query = query.where(c.c.positions_from.is_(None) | inside)
    return list(conn.execute(query.order_by(c.c.id)).scalars())


def states(conn: Connection, ids: Iterable[str]) -> dict[str, RevenueContractState]:
    wanted = list(ids)
    found: dict[str, RevenueContractState] = {}
    for i in range(0, len(wanted), CHUNK):
        for rc, text in conn.execute(select(c.c.id, c.c.state).where(
                c.c.id.in_(wanted[i:i + CHUNK]))):
            found[rc] = loads_state(text)
    return found


# -- reconciliation: one day's positions summed, and each contract's price ------------------
def held_at(day: date) -> ColumnElement[bool]:
    """The contracts whose rows answer `day` (`Stored.held`), in SQL."""
    spanned = and_(c.c.positions_from.is_not(None), c.c.positions_to.is_not(None))
    if is_month_start(day):
        return spanned
    return and_(spanned, or_(c.c.positions_from > day, c.c.positions_to <= day))


def totals_at(conn: Connection, legal_entity: str, day: date) -> dict[str, list[int]]:
    """Per currency: the number of contracts (every one), then, over the contracts held at
    `day`, their `BALANCE_COLUMNS` at `day` and their credits before it (positive), summed
    in SQL; the others are for the caller to add from their states (`unheld_at`)."""
    held = held_at(day)
    on = and_(p.c.revenue_contract_id == c.c.id, p.c.day == _target(day),
              c.c.positions_from <= day, held)
    sums = [func.coalesce(func.sum(p.c[name]), 0) for name in BALANCE_COLUMNS]
    found: dict[str, list[int]] = {}
    for currency, *amounts in conn.execute(
            select(c.c.currency, func.count(c.c.id), *sums).select_from(c.outerjoin(p, on))
            .where(c.c.legal_entity == legal_entity).group_by(c.c.currency)):
        found[currency] = [*(int(v) for v in amounts), 0]
    b = t.billings
    for currency, amount in conn.execute(
            select(c.c.currency, func.sum(b.c.amount_minor))
            .join(c, c.c.id == b.c.revenue_contract_id)
            .where(c.c.legal_entity == legal_entity, b.c.amount_minor < 0,
                   b.c.issued_on < day, held)
            .group_by(c.c.currency)):
        found[currency][-1] = -int(amount)
    return found


def unheld_at(conn: Connection, legal_entity: str, day: date) -> Iterator[list[str]]:
    """The ids of the contracts the rows do not answer at `day` (`held_at`), a page of
    `CHUNK` at a time."""
    query = (select(c.c.id).where(c.c.legal_entity == legal_entity, not_(held_at(day)))
             .order_by(c.c.id))
    page = list(conn.execute(query.limit(CHUNK)).scalars())
    while page:
        yield page
        page = (list(conn.execute(query.where(c.c.id > page[-1]).limit(CHUNK)).scalars())
                if len(page) == CHUNK else [])


@dataclass(frozen=True, slots=True)
class StoredPrice:
    """One contract's price and credits as its rows hold them (`transaction_price_minor`
    None: no rows, read it from the state); credits before the day asked, positive."""

    revenue_contract_id: str
    subscription_contract_id: str
    customer_id: str
    currency: str
    transaction_price_minor: int | None
    credits: tuple[tuple[str, int], ...]


def prices_at(conn: Connection, legal_entity: str, day: date) -> Iterator[StoredPrice]:
    """Every contract of the entity with its price and its credits before `day` summed per
    document, by subscription contract id in code-point order: two ordered streams (the
    contracts, their credits) merged, never a join grouped over every contract."""
    b = t.billings
    spanned = c.c.positions_from.is_not(None)
    contracts = (select(c.c.subscription_contract_id, c.c.id, c.c.customer_id, c.c.currency,
                        case((spanned, c.c.transaction_price_minor)))
                 .where(c.c.legal_entity == legal_entity)
                 .order_by(code_point_order(conn, c.c.subscription_contract_id)))
    credits = stream(conn, (
        select(c.c.subscription_contract_id, b.c.document_id, func.sum(b.c.amount_minor))
        .join(c, c.c.id == b.c.revenue_contract_id)
        .where(c.c.legal_entity == legal_entity, b.c.amount_minor < 0, b.c.issued_on < day)
        .group_by(c.c.subscription_contract_id, b.c.document_id)
        .order_by(code_point_order(conn, c.c.subscription_contract_id),
                  code_point_order(conn, b.c.document_id))))
    try:
        pending = next(credits, None)
        for sub, rc, customer, currency, price in stream(conn, contracts):
            mine: list[tuple[str, int]] = []
            while pending is not None and pending[0] <= sub:
                if pending[0] == sub:
                    mine.append((pending[1], -int(pending[2])))
                pending = next(credits, None)
            yield StoredPrice(rc, sub, customer or "", currency,
                              None if price is None else int(price), tuple(mine))
    finally:
        credits.close()
