"""Running the reconciliation: open one snapshot of each system, run the checks over each
entity's books, keep the run, and put every unexplained break in the exception queue (and
take fixed ones out).

Rules:
- Billing, the ERP and the revenue engine are read through their ports only, so the same
  run works against the embedded systems, Stripe or Tryton. Billing and the ERP are read in
  sets inside one snapshot each (`books()`); an ERP that offers no snapshot is read through
  its lists (`port_books.ListLedgerBooks`).
- Revenue per period is compared month by month over the year of `as_of`, up to the last
  month that ends on or before it; the revenue engine's positions are read once per month
  boundary, and only their sums are kept.
- Breaks go to the exception queue as `recon/queue.py` says: one `reconciliation_break` per
  unexplained break, open until a run finds its item agreeing; the refs of open breaks are
  watched, so a check keeps them even when they agree.
- A run says how far it has got (`progress(stage, done, total)`, optional): one step per
  entity and check, and one per entity recorded (its run kept, its breaks synced with the
  queue, in the one transaction of the record); `total` is known from the start.
- A run recorded `unless_recorded` (the daily job's) is kept only if no run as of its day is
  recorded yet, checked in the transaction of the record under a database-wide lock
  (`RECORD_LOCK`): two processes racing for one day (a daily job whose holder lost its lease
  mid-run and the one that took it over) record it once.
- Stored runs are read back as they were recorded (`stored`; trends: `history`): the console shows
  what a run found, and computes (without recording) only a day nobody ran.
- A run holds no state between calls and shares nothing but the engines and ports (each
  read opens its own connection): it may run in its own thread or process while the
  pipeline delivers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from itertools import pairwise
from typing import Any

from sqlalchemy import Engine

from finsync.audit import trail
from finsync.audit.chain import Entry
from finsync.connectors.ports import (
    BillingBooks,
    BillingRecordsPort,
    ContractPrice,
    LedgerBooks,
    LedgerBooksPort,
    LedgerPort,
    PositionTotals,
    RevenueAdjustment,
    RevenueBooksPort,
    RevenuePort,
    TaxAmount,
)
from finsync.domain.clock import Period, first_of_next_month
from finsync.domain.journal import PeriodStatus
from finsync.domain.money import Money
from finsync.recon import queue
from finsync.recon.books import Books, PeriodRevenue, contract_prices, position_totals
from finsync.recon.checks import CHECKS, REVENUE_CHECKS
from finsync.recon.digest import FULL_READ_ROWS_MAX, document_streams
from finsync.recon.documents import ItemDocuments, documents_of
from finsync.recon.model import CheckResult, Report
from finsync.recon.port_books import ListLedgerBooks
from finsync.storage import exception_log, recon_log
from finsync.storage.db import reading, serialize, transaction

Progress = Callable[[str, int, int], None]  # (stage, done, total)
RECORD_LOCK = "recon_record"  # held while a run recorded `unless_recorded` is kept


def _quiet(_stage: str, _done: int, _total: int) -> None:
    """No one is watching the run."""


@dataclass(frozen=True, slots=True)
class Entity:
    id: str
    currency: str


@dataclass(frozen=True, slots=True)
class _Revenue:
    opening: Sequence[PositionTotals]  # per currency
    closing: Sequence[PositionTotals]  # per currency
    prices: Callable[[], Iterable[ContractPrice]]  # per contract, the closing day's
    recognised: dict[str, list[Money]]  # per currency, at each month boundary


class Reconciliation:
    def __init__(self, engine: Engine, billing: BillingRecordsPort, ledger: LedgerPort,
                 revenue: RevenuePort, entities: Sequence[Entity],
                 clock: Callable[[], datetime], *,
                 full_read_rows_max: int = FULL_READ_ROWS_MAX) -> None:
        self._engine, self._billing, self._ledger = engine, billing, ledger
        self._revenue, self._entities, self._clock = revenue, list(entities), clock
        self._full_read_rows_max = full_read_rows_max

    def run(self, as_of: date, *, record: bool = True, progress: Progress = _quiet,
            actor: str | None = None, unless_recorded: bool = False) -> Report:
        """Every check (`CHECKS`) of every entity as of `as_of`; with `record`, the run is kept and
        the exception queue synced (with `unless_recorded`, only if no run as of that day is
        recorded by then), and, with `actor`, the run is in the audit trail as theirs
        (`RUN_ACTION`)."""
        total = len(self._entities) * (len(CHECKS) + (1 if record else 0))
        progress("reading", 0, total)
        with reading(self._engine) as conn:
            explained = queue.explanations(conn)
            watched = {e.id: frozenset(queue.watched_refs(conn, e.id)) for e in self._entities}
        checks: list[CheckResult] = []
        with self._billing.books() as billing, self._ledger_books() as ledger:
            for entity in self._entities:
                accounts = {role: self._ledger.resolve_account(code) for role, code
                            in self._revenue.account_map(entity.id).items()}
                for books, suffix in self._entity_books(billing, ledger, entity, as_of,
                                                        accounts, explained, watched[entity.id]):
                    for check in REVENUE_CHECKS if suffix else CHECKS:
                        checks.append(_named(check(books), suffix))
                        progress(f"{entity.id} {check.__name__}{suffix}", len(checks),
                                 max(total, len(checks)))
        report = Report(as_of, tuple(checks))
        if record:
            self._record(report, actor, progress, total, unless_recorded=unless_recorded)
        return report

    def last_as_of(self) -> date | None:
        """The as-of day of the latest recorded run (None: none yet)."""
        with reading(self._engine) as conn:
            return recon_log.last_as_of(conn)

    def stored(self, as_of: date) -> list[dict[str, Any]]:
        """The latest recorded run of each entity as of `as_of` (`recon_log` rows, checks
        as `CheckResult.as_dict`); empty when nobody ran that day."""
        with reading(self._engine) as conn:
            return recon_log.latest_as_of(conn, as_of)

    def documents(self, ref: str) -> ItemDocuments:
        """The hub's events and cross-references for the object an item names."""
        with reading(self._engine) as conn:
            return documents_of(conn, ref)

    def break_exceptions(self, entity: str, check: str, refs: Sequence[str],
                         ) -> dict[str, tuple[int, str]]:
        """Ref -> (id, status) of the latest reconciliation_break of each item of a check."""
        fingerprints = {queue.break_fingerprint(entity, check, ref): ref for ref in refs}
        with reading(self._engine) as conn:
            found = exception_log.latest_by_fingerprint(conn, fingerprints)
        return {fingerprints[f]: (i, str(status)) for f, (i, status) in found.items()}

    def _ledger_books(self) -> AbstractContextManager[LedgerBooks]:
        if isinstance(self._ledger, LedgerBooksPort):
            return self._ledger.books()
        return _plain(ListLedgerBooks(self._ledger))

    def _entity_books(self, billing: BillingBooks, ledger: LedgerBooks, entity: Entity,
                      as_of: date, accounts: Mapping[str, str], explained: Mapping[str, str],
                      watched: frozenset[str]) -> list[tuple[Books, str]]:
        """The entity's books in its functional currency (every check), then, when the ERP
        tells its lines' currencies, one per other currency its revenue contracts are in
        (the revenue checks, named `<check>[<currency>]`)."""
        e, currency = entity.id, entity.currency
        bounds = _month_bounds(date(as_of.year, 1, 1), as_of + timedelta(days=1))
        revenue = self._revenue_reads(entity, bounds, as_of)
        adjusted = (self._revenue.adjustments(e)
                    if isinstance(self._revenue, RevenueBooksPort) else ())
        gl_days = [*(day - timedelta(days=1) for day in bounds), as_of]
        gl_accounts = sorted(set(accounts.values()))
        closed = [ledger.period_status(e, first) is PeriodStatus.CLOSED for first in bounds]
        as_of_closed = ledger.period_status(e, as_of) is PeriodStatus.CLOSED
        split = ledger.balances_in(e, currency, gl_accounts, gl_days)
        documents = document_streams(billing, ledger, e, currency, as_of, watched,
                                     self._full_read_rows_max)
        # The GL per currency when the ERP tells its lines' currencies apart; else only its
        # functional totals, and only the functional currency is checked.
        gl = {currency: ledger.balances(e, gl_accounts, gl_days) if split is None else split}
        for code in sorted(set(revenue.recognised) - {currency}) if split is not None else ():
            told = ledger.balances_in(e, code, gl_accounts, gl_days)
            assert told is not None  # an ERP that tells one currency's lines tells them all
            gl[code] = told
        return [(Books(
            e, code, as_of,
            documents.open_invoices,
            lambda: billing.customer_balances(e, currency, as_of),
            documents.payments,
            lambda: billing.credit_memos(e, as_of),
            lambda: billing.contract_values(e),
            documents.erp_open_items,
            lambda: ledger.customer_open(e, currency, as_of),
            documents.erp_applied,
            lambda: revenue.opening, revenue.prices,
            _periods(code, bounds, _as_booked(code, bounds, revenue.recognised[code], adjusted),
                     balances, net_revenue_accounts(accounts), closed),
            balances[-1], accounts, explained, as_of_closed, watched,
            foreign_checked=split is not None,
            billing_tax=lambda: billing.tax_amounts(e, as_of),
            erp_tax=_erp_tax(ledger, e, as_of),
            documents_agreeing=documents.documents_agreeing,
            payments_agreeing=documents.payments_agreeing,
            closing_totals=lambda: revenue.closing), "" if code == currency else f"[{code}]")
            for code, balances in gl.items()]

    def _revenue_reads(self, entity: Entity, bounds: list[date], as_of: date) -> _Revenue:
        """The engine's positions the year began with and those of the day after `as_of`,
        summed per currency; the latter's prices per contract as a stream; and the revenue
        recognised per currency at each month boundary. An engine with set reads
        (`RevenueBooksPort`) sums them itself; another is read as lists of each day's
        positions (memory grows with its contracts there)."""
        e, day_after = entity.id, as_of + timedelta(days=1)
        width = len(bounds)
        if isinstance(self._revenue, RevenueBooksPort):
            port = self._revenue
            sums = {code: list(per) for code, per in port.recognised_over(e, bounds).items()}
            opening = port.position_totals(e, bounds[0])
            closing = port.position_totals(e, day_after)

            def prices() -> Iterable[ContractPrice]:
                return port.contract_prices(e, day_after)
        else:
            by_day = [self._revenue.positions(e, day) for day in (*bounds, day_after)]
            sums = {}
            for n, positions in enumerate(by_day[:width]):
                for p in positions:
                    per = sums.setdefault(p.currency, [Money.zero(p.currency)] * width)
                    per[n] = per[n] + p.recognised
            opening, closing = position_totals(by_day[0]), position_totals(by_day[-1])
            listed = contract_prices(by_day[-1])

            def prices() -> Iterable[ContractPrice]:
                return listed
        for code in [t.currency for t in closing] + [entity.currency]:
            sums.setdefault(code, [])
        recognised = {code: _padded(per[:width], width, code) for code, per in sums.items()}
        return _Revenue(opening, closing, prices, recognised)

    def _record(self, report: Report, actor: str | None, progress: Progress,
                total: int, *, unless_recorded: bool) -> None:
        now = self._clock()
        done = len(report.checks)
        with transaction(self._engine) as conn:
            if unless_recorded:
                serialize(conn, RECORD_LOCK)
                if recon_log.latest_as_of(conn, report.as_of):  # another process's, meanwhile
                    progress("recorded already", total, total)
                    return
            if actor is not None:
                trail.append(conn, _run_entry(actor, report), now)
            for entity in self._entities:
                progress(f"recording {entity.id}", done, total)
                mine = [c for c in report.checks if c.legal_entity == entity.id]
                variance = sum((c.variance for c in mine if c.currency == entity.currency),
                               Money.zero(entity.currency))
                recon_log.record(conn, entity.id, report.as_of, variance,
                                 sum(len(c.breaks) for c in mine),
                                 [c.as_dict() for c in mine], now)
                queue.sync(conn, entity.id, report.as_of, mine, now)
                done += 1
        progress("recorded", done, total)


RUN_ACTION = "reconciliation.run"


def _as_booked(currency: str, bounds: list[date], recognised: list[Money],
               adjusted: Sequence[RevenueAdjustment]) -> list[Money]:
    """The engine's cumulative revenue at each bound as its journals booked it: a change
    that reached a closed month after its close is in the GL's month that caught it up
    (`RevenueAdjustment`), not in the closed month, which the engine's figures hold it in."""
    moved = list(recognised)
    for a in adjusted:
        if a.revenue.currency != currency:
            continue
        for n, bound in enumerate(bounds):  # cumulative: in from its month's end on
            if a.adjusts < bound <= a.booked_in:
                moved[n] = moved[n] - a.revenue
    return moved


def net_revenue_accounts(accounts: Mapping[str, str]) -> tuple[str, ...]:
    """The accounts whose net credit is the engine's (net) revenue: revenue and, when the
    engine books concessions apart, contra revenue."""
    return tuple(sorted({accounts[r] for r in ("revenue", "contra_revenue") if r in accounts}))


def _periods(currency: str, bounds: list[date], recognised: list[Money],
             balances: Sequence[Mapping[str, Money]], revenue_accounts: tuple[str, ...],
             closed: list[bool]) -> list[PeriodRevenue]:
    """Each whole month: the engine's recognition and the GL's net revenue movement."""
    zero = Money.zero(currency)
    gl_credit = [-sum((balances[n].get(a, zero) for a in revenue_accounts), zero)
                 for n in range(len(bounds))]
    return [PeriodRevenue(first.strftime("%Y-%m"), Period(first, last),
                          recognised[i + 1] - recognised[i], gl_credit[i + 1] - gl_credit[i],
                          closed[i])
            for i, (first, last) in enumerate(pairwise(bounds))]


def _erp_tax(ledger: LedgerBooks, entity: str,
             as_of: date) -> Callable[[], Iterator[TaxAmount]] | None:
    """The ERP's tax payable stream; None for an ERP that cannot tell it per document."""
    if isinstance(ledger, ListLedgerBooks) and not ledger.tells_tax:
        return None
    return lambda: ledger.tax_payable(entity, as_of)


def _named(result: CheckResult, suffix: str) -> CheckResult:
    return replace(result, name=result.name + suffix) if suffix else result


def _run_entry(actor: str, report: Report) -> Entry:
    """A recorded run in the audit trail: who ran it, as of when, and what it found."""
    return Entry(actor, RUN_ACTION, "reconciliation", report.as_of.isoformat(),
                 f"reconciliation as of {report.as_of.isoformat()}",
                 after={"unexplained_breaks": len(report.unexplained),
                        "breaks": sum(len(c.breaks) for c in report.checks),
                        "total_variance": {c: str(m.amount) for c, m
                                           in sorted(report.total_variance().items())}})


def _month_bounds(start: date, end: date) -> list[date]:
    bounds = [start]
    while (nxt := first_of_next_month(bounds[-1])) <= end:
        bounds.append(nxt)
    return bounds


def _padded(sums: list[Money], width: int, currency: str) -> list[Money]:
    """A currency the engine summed nothing in (a contract recognising nothing yet)."""
    return sums + [Money.zero(currency)] * (width - len(sums))


@contextmanager
def _plain(books: LedgerBooks) -> Iterator[LedgerBooks]:
    yield books
