"""Posting a batch of documents in one transaction, with set-based reads and writes.

Rules:
- Everything a batch needs is read before any document is booked, one statement per kind
  of row: the idempotency keys, the periods of its entities, the AR items its documents
  name or would open, the open credits (or debits) of the customers whose credits (or
  debits) a document reads; rates once per currency pair. Items are read `FOR UPDATE`
  (PostgreSQL), so two batches that touch the same items take turns.
- Documents are then booked in order against that snapshot, which each booking updates: a
  later document sees what an earlier one opened or settled (an invoice and its payment
  may share a batch), exactly as if they had posted one by one.
- Each document is validated alone: a refused one is answered with its `DomainError`,
  changes nothing in the snapshot, and the others still post. A key seen earlier (in the
  books or the batch) answers the first entry, or is refused if the body differs. A batch
  whose every key is in the books already (one sent again) books nothing: its keys are
  read first, and it reads neither items, periods nor rates.
- The writes are one executemany per table: entries, lines, new items, the items' final
  open amounts, settlements. Entries of one batch keep their order (`posted_at` rises).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Connection,
    String,
    and_,
    any_,
    func,
    literal,
    select,
)

from finsync import collector, dbbulk
from finsync.domain.errors import DomainError
from finsync.domain.ids import derive_id
from finsync.domain.journal import AccountingPeriod, JournalEntry
from finsync.domain.money import Money
from finsync.systems.ledger import records
from finsync.systems.ledger import tables as t
from finsync.systems.ledger.ar import ItemKind, OpenItem
from finsync.systems.ledger.chart import Chart
from finsync.systems.ledger.documents import Books, Posting
from finsync.systems.ledger.errors import (
    DuplicateDocumentError,
    IdempotencyMismatchError,
    PeriodNotFoundError,
)
from finsync.systems.ledger.fx import Rate, RateTable
from finsync.systems.ledger.periods import check_posting
from finsync.systems.ledger.plans import ItemReader, Plan
from finsync.systems.ledger.rules import AccountMap

IN_LIST_MAX = 500  # values per IN (...) list: well inside every driver's parameter limit


@dataclass(frozen=True, slots=True)
class Posted:
    entry_id: str
    legal_entity: str
    posting_date: date
    replayed: bool  # True when the key had been posted before


@dataclass(frozen=True, slots=True)
class Setup:
    """What never changes about an entity once created."""

    functional: str
    accounts: AccountMap
    chart: Chart


@dataclass(frozen=True, slots=True)
class Item:
    """One document of a batch: its key and plan, or why it could not even be planned."""

    key: str
    plan: Plan | DomainError


def _among(conn: Connection, column: ColumnElement[str],
           values: Sequence[str]) -> Iterator[ColumnElement[bool]]:
    """`column IN values`, as the conditions of the queries to run: on PostgreSQL one
    array parameter (`= ANY`), which it binds and plans far faster than hundreds of single
    ones; elsewhere one IN list per `IN_LIST_MAX` values."""
    if conn.dialect.name == "postgresql":
        yield column == any_(literal(list(values), ARRAY(String)))
        return
    for start in range(0, len(values), IN_LIST_MAX):
        yield column.in_(values[start:start + IN_LIST_MAX])


def _known_keys(conn: Connection, keys: Sequence[str]) -> dict[str, Any]:
    known: dict[str, Any] = {}
    e = t.entries.c
    for among in _among(conn, e.idempotency_key, sorted(set(keys))):
        rows = conn.execute(select(e.id, e.idempotency_key, e.body_hash, e.entity,
                                   e.posting_date).where(among)).mappings()
        known.update((r["idempotency_key"], r) for r in rows)
    return known


def periods_of(conn: Connection, entities: Iterable[str]) -> dict[str, list[AccountingPeriod]]:
    found: dict[str, list[AccountingPeriod]] = {}
    wanted = sorted(set(entities))
    if not wanted:
        return found
    rows = conn.execute(select(t.periods).where(t.periods.c.entity.in_(wanted))
                        .order_by(t.periods.c.entity, t.periods.c.start)).mappings()
    for r in rows:
        found.setdefault(r["entity"], []).append(records.period_of(r))
    return found


class Rates:
    """Rates of one batch: per currency pair, the series from the rate in force on the
    batch's first day to its last day, read once on first use."""

    def __init__(self, conn: Connection, first: date, last: date) -> None:
        self._conn, self._first, self._last = conn, first, last
        self._tables: dict[tuple[str, str], RateTable] = {}

    def convert(self, money: Money, quote: str, on: date) -> Money:
        pair = (money.currency, quote)
        if pair not in self._tables:
            self._tables[pair] = self._load(*pair)
        return self._tables[pair].convert(money, quote, on)

    def _load(self, base: str, quote: str) -> RateTable:
        r = t.fx_rates.c
        pair = and_(r.base == base, r.quote == quote)
        floor = select(func.max(r.effective)).where(pair, r.effective <= self._first)
        rows = self._conn.execute(select(r.base, r.quote, r.effective, r.rate).where(
            pair, r.effective <= self._last,
            r.effective >= func.coalesce(floor.scalar_subquery(), self._first)))
        return RateTable(Rate(row.base, row.quote, row.effective, Decimal(row.rate))
                         for row in rows)


@dataclass
class Subledger:
    """The AR items a batch reads, as its bookings change them; what to write at the end."""

    items: dict[tuple[str, str], OpenItem] = field(default_factory=dict)
    # (entity, customer, kind) whose open items were read: the only ones a booking may ask.
    read: set[tuple[str, str, ItemKind]] = field(default_factory=set)
    by_customer: dict[tuple[str, str], dict[str, None]] = field(default_factory=dict)
    opened: dict[tuple[str, str], tuple[OpenItem, str]] = field(default_factory=dict)
    changed: dict[tuple[str, str], OpenItem] = field(default_factory=dict)
    settlements: list[tuple[Any, ...]] = field(default_factory=list)

    def add(self, item: OpenItem) -> None:
        self.items[(item.legal_entity, item.id)] = item
        if item.kind is not ItemKind.INVOICE:
            self.by_customer.setdefault((item.legal_entity, item.customer_id), {})[item.id] = None

    def open_item(self, entity: str, item_id: str) -> OpenItem | None:
        return self.items.get((entity, item_id))

    def customer_items(self, entity: str, customer: str, currency: str,
                       kind: ItemKind) -> list[OpenItem]:
        assert (entity, customer, kind) in self.read, \
            f"a plan read the {kind} items of {customer} without naming them"
        found = (self.items[(entity, i)] for i in self.by_customer.get((entity, customer), {}))
        return [i for i in found
                if i.kind is kind and i.open.currency == currency and i.open.amount > 0]

    def check_new(self, posting: Posting) -> None:
        for item in posting.opened:
            if (item.legal_entity, item.id) in self.items:
                raise DuplicateDocumentError(
                    f"{item.document_id} is already in the books under another key")

    def apply(self, posting: Posting, entry: JournalEntry) -> None:
        for item in posting.opened:
            self.add(item)
            self.opened[(item.legal_entity, item.id)] = (item, entry.id)
        for s in posting.settled:
            key = (s.item.legal_entity, s.item.id)
            self.items[key] = s.item
            if key in self.opened:
                self.opened[key] = (s.item, self.opened[key][1])
            else:
                self.changed[key] = s.item
            self.settlements.append(records.settlement_row(s, entry.id, entry.posting_date))


def _subledger(conn: Connection, plans: Sequence[Plan]) -> Subledger:
    """The items the plans name or would open, and the open credits or debits of the
    customers whose credits or debits they read, locked until the batch commits."""
    ids: dict[str, set[str]] = {}
    customers: dict[tuple[str, ItemKind], set[str]] = {}
    for plan in plans:
        ids.setdefault(plan.entity, set()).update((*plan.item_ids, *plan.opens))
        if plan.customer is not None:
            assert plan.customer_kind is not None, f"{plan.document_id} reads no kind"
            customers.setdefault((plan.entity, plan.customer_kind), set()).add(plan.customer)
    book = Subledger()
    i = t.items.c
    for entity, wanted in sorted(ids.items()):
        for among in _among(conn, i.id, sorted(wanted)):
            for row in conn.execute(select(t.items).where(i.entity == entity, among)
                                    .with_for_update()).mappings():
                book.add(records.item_of(row))
    for (entity, kind), who in sorted(customers.items()):
        book.read.update((entity, customer, kind) for customer in who)
        for among in _among(conn, i.customer, sorted(who)):
            for row in conn.execute(select(t.items).where(
                    i.entity == entity, among, i.kind == kind.value,
                    i.open_minor > 0).with_for_update()).mappings():
                book.add(records.item_of(row))
    return book


@dataclass(frozen=True, slots=True)
class Booking:
    entry: JournalEntry
    period: AccountingPeriod
    posting: Posting


def book(plan: Plan, key: str, setup: Setup, periods: Sequence[AccountingPeriod],
         items: ItemReader, rates: Callable[[Money, str, date], Money]) -> Booking:
    """One document's entry, period and AR changes (pure once its inputs are read)."""
    period = next((p for p in periods if p.start <= plan.on < p.end), None)
    if period is None:
        raise PeriodNotFoundError(f"{plan.entity} has no accounting period for {plan.on}")
    check_posting(period, plan.source.approved)
    functional = setup.functional

    def convert(money: Money) -> Money:
        return money if money.currency == functional else rates(money, functional, plan.on)

    def convert_on(money: Money, day: date) -> Money:
        return money if money.currency == functional else rates(money, functional, day)

    posting = plan.build(items, Books(plan.entity, functional, setup.chart, setup.accounts,
                                      convert, convert_on))
    for line in posting.lines:
        setup.chart.get(line.account)  # an unknown account refuses the whole posting
    entry = JournalEntry(derive_id("je", key), plan.entity, plan.on, plan.memo, posting.lines,
                         plan.source.correlation_id, plan.reverses, plan.source.refs)
    return Booking(entry, period, posting)


@dataclass
class Writes:
    entries: list[tuple[Any, ...]] = field(default_factory=list)
    lines: list[tuple[Any, ...]] = field(default_factory=list)
    last_at: datetime | None = None

    def add(self, booking: Booking, plan: Plan, key: str, body_hash: str,
            now: datetime) -> None:
        # Later in the batch is later in the books, whatever the clock's resolution.
        at = now if self.last_at is None or now > self.last_at \
            else self.last_at + timedelta(microseconds=1)
        self.last_at = at
        self.entries.append(records.entry_row(
            booking.entry, period=booking.period.name, key=key, body_hash=body_hash,
            kind=plan.kind, document_id=plan.document_id, approved=plan.source.approved,
            at=at))
        self.lines.extend(records.line_rows(booking.entry))


def replayed(known: Any, key: str, body_hash: str) -> Posted:
    if known["body_hash"] != body_hash:
        raise IdempotencyMismatchError(f"key {key!r} was posted with another body "
                                       f"(entry {known['id']})")
    return Posted(known["id"], known["entity"], known["posting_date"], replayed=True)


def post_batch(conn: Connection, batch: Sequence[Item], setup: Callable[[str], Setup],
               clock: Callable[[], datetime]) -> list[Posted | DomainError]:
    """Book and write every document of `batch` inside the caller's transaction, with the
    cyclic garbage collector paused: the batch's entries, lines and items hold no cycle,
    and the collection passes their numbers set off cost a sixth of a batch."""
    with collector.paused():
        return _post_batch(conn, batch, setup, clock)


def _post_batch(conn: Connection, batch: Sequence[Item], setup: Callable[[str], Setup],
                clock: Callable[[], datetime]) -> list[Posted | DomainError]:
    keys = [item.key for item in batch]
    known = _known_keys(conn, keys)
    if all(key in known for key in keys):  # a batch sent again: nothing to book
        return [_answered_or_refused(item, known) for item in batch]
    plans = [item.plan for item in batch if isinstance(item.plan, Plan)]
    # Items before keys: a concurrent call that commits in between shows its key too, so
    # its document is answered as a replay rather than refused as a duplicate.
    subledger = _subledger(conn, plans)
    known = _known_keys(conn, keys)
    periods = periods_of(conn, (plan.entity for plan in plans))
    days = [day for plan in plans for day in plan.days] or [date.min]
    rates = Rates(conn, min(days), max(days))
    writes = Writes()
    outcomes: list[Posted | DomainError] = []
    for item in batch:
        try:
            outcomes.append(_post_one(item, known, periods, rates, subledger, writes, setup,
                                      clock))
        except DomainError as exc:
            outcomes.append(exc)
    _write(conn, writes, subledger)
    return outcomes


def _post_one(item: Item, known: dict[str, Any], periods: dict[str, list[AccountingPeriod]],
              rates: Rates, subledger: Subledger, writes: Writes,
              setup: Callable[[str], Setup], clock: Callable[[], datetime]) -> Posted:
    if item.key in known:
        return _answered(item, known)
    plan = item.plan
    if isinstance(plan, DomainError):
        raise plan
    body_hash = plan.body_hash
    booking = book(plan, item.key, setup(plan.entity), periods.get(plan.entity, ()),
                   subledger, rates.convert)
    subledger.check_new(booking.posting)
    subledger.apply(booking.posting, booking.entry)
    writes.add(booking, plan, item.key, body_hash, clock())
    known[item.key] = {"id": booking.entry.id, "body_hash": body_hash, "entity": plan.entity,
                       "posting_date": plan.on}
    return Posted(booking.entry.id, plan.entity, plan.on, replayed=False)


def _answered(item: Item, known: dict[str, Any]) -> Posted:
    """The first entry of a key posted already, if this is its very document (the plan's
    body hash); refused otherwise."""
    plan = item.plan
    if isinstance(plan, DomainError):
        raise plan
    return replayed(known[item.key], item.key, plan.body_hash)


def _answered_or_refused(item: Item, known: dict[str, Any]) -> Posted | DomainError:
    try:
        return _answered(item, known)
    except DomainError as exc:
        return exc


def _write(conn: Connection, writes: Writes, subledger: Subledger) -> None:
    if subledger.changed:
        _update_items(conn, list(subledger.changed.values()))
    opened = [records.item_row(item, entry_id) for item, entry_id in subledger.opened.values()]
    dbbulk.insert_rows(conn, (
        dbbulk.Rows(t.entries, records.ENTRY_COLUMNS, writes.entries),
        dbbulk.Rows(t.lines, records.LINE_COLUMNS, writes.lines),
        dbbulk.Rows(t.items, records.ITEM_COLUMNS, opened),
        dbbulk.Rows(t.settlements, records.SETTLEMENT_COLUMNS, subledger.settlements)))


def _update_items(conn: Connection, changed: Sequence[OpenItem]) -> None:
    """The items' new open amounts: on PostgreSQL one UPDATE ... FROM unnest(arrays), one
    statement and round trip for all; on SQLite, in process, the driver's executemany."""
    rows = [(item.open.to_minor(), item.booked_open.to_minor(), item.legal_entity, item.id)
            for item in changed]
    if conn.dialect.name == "postgresql":
        columns = [list(column) for column in zip(*rows, strict=True)]
        conn.exec_driver_sql(
            "UPDATE ledger_items SET open_minor = new.open, booked_open_minor = new.booked "
            "FROM unnest(%s::bigint[], %s::bigint[], %s::varchar[], %s::varchar[]) "
            "AS new(open, booked, entity, id) "
            "WHERE ledger_items.entity = new.entity AND ledger_items.id = new.id",
            tuple(columns))
        return
    conn.exec_driver_sql("UPDATE ledger_items SET open_minor = ?, booked_open_minor = ? "
                         "WHERE entity = ? AND id = ?", rows)
