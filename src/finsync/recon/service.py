"""Running the reconciliation: gather each system's figures, run the checks, keep the run,
and put every unexplained break in the exception queue (and take fixed ones out).

Rules:
- Billing, the ERP and the revenue engine are read through their ports only, so the same
  run works against the embedded systems, Stripe or Tryton.
- Revenue per period is compared month by month over the year of `as_of`, up to the last
  month that ends on or before it.
- Breaks go to the exception queue as `recon/queue.py` says: one `reconciliation_break` per
  unexplained break, open until a run finds its item agreeing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import pairwise

from sqlalchemy import Engine

from finsync.connectors.ports import BillingRecordsPort, LedgerPort, RevenuePort
from finsync.domain.clock import Period, first_of_next_month
from finsync.domain.journal import PeriodStatus
from finsync.domain.money import Money
from finsync.recon import queue
from finsync.recon.checks import CHECKS, PeriodRevenue, Snapshot
from finsync.recon.model import Report
from finsync.storage import recon_log
from finsync.storage.db import reading, transaction


@dataclass(frozen=True, slots=True)
class Entity:
    id: str
    currency: str


class Reconciliation:
    def __init__(self, engine: Engine, billing: BillingRecordsPort, ledger: LedgerPort,
                 revenue: RevenuePort, entities: Sequence[Entity],
                 clock: Callable[[], datetime]) -> None:
        self._engine, self._billing, self._ledger = engine, billing, ledger
        self._revenue, self._entities, self._clock = revenue, list(entities), clock

    def run(self, as_of: date, *, record: bool = True) -> Report:
        checks = tuple(check(snap) for entity in self._entities
                       for snap in [self.snapshot(entity, as_of)] for check in CHECKS)
        report = Report(as_of, checks)
        if record:
            self._record(report)
        return report

    def snapshot(self, entity: Entity, as_of: date) -> Snapshot:
        day_after = as_of + timedelta(days=1)
        year_start = date(as_of.year, 1, 1)
        accounts = {role: self._ledger.resolve_account(code)
                    for role, code in self._revenue.account_map().items()}
        with reading(self._engine) as conn:
            explained = queue.explanations(conn)
        return Snapshot(
            entity.id, entity.currency, as_of,
            self._billing.invoices(entity.id, as_of),
            self._billing.credit_memos(entity.id, as_of),
            self._billing.payments(entity.id, as_of),
            self._billing.refunds(entity.id, as_of),
            self._billing.contract_values(entity.id),
            self._ledger.receivables(entity.id, as_of),
            self._ledger.applications(entity.id, as_of),
            self._revenue.positions(entity.id, year_start),
            self._revenue.positions(entity.id, day_after),
            self._periods(entity, year_start, day_after, accounts["revenue"]),
            self._gl(entity, as_of), accounts, explained,
            self._ledger.period_status(entity.id, as_of) is PeriodStatus.CLOSED)

    def _gl(self, entity: Entity, as_of: date) -> dict[str, Money]:
        return {b.account: b.balance for b in self._ledger.trial_balance(entity.id, as_of)}

    def _periods(self, entity: Entity, start: date, end: date,
                 revenue_account: str) -> list[PeriodRevenue]:
        """Each whole month from `start` to `end`: the engine's recognition and the GL's
        revenue movement, each read once per month boundary."""
        bounds = [start]
        while (nxt := first_of_next_month(bounds[-1])) <= end:
            bounds.append(nxt)
        zero = Money.zero(entity.currency)
        recognised = [sum((p.recognised for p in self._revenue.positions(entity.id, day)
                           if p.currency == entity.currency), zero) for day in bounds]
        gl_credit = [-self._gl(entity, day - timedelta(days=1)).get(revenue_account, zero)
                     for day in bounds]
        return [PeriodRevenue(first.strftime("%Y-%m"), Period(first, last),
                              recognised[i + 1] - recognised[i],
                              gl_credit[i + 1] - gl_credit[i],
                              self._ledger.period_status(entity.id, first)
                              is PeriodStatus.CLOSED)
                for i, (first, last) in enumerate(pairwise(bounds))]

    def _record(self, report: Report) -> None:
        now = self._clock()
        with transaction(self._engine) as conn:
            for entity in self._entities:
                mine = [c for c in report.checks if c.legal_entity == entity.id]
                variance = sum((c.variance for c in mine if c.currency == entity.currency),
                               Money.zero(entity.currency))
                recon_log.record(conn, entity.id, report.as_of, variance,
                                 sum(len(c.breaks) for c in mine),
                                 [c.as_dict() for c in mine], now)
                queue.sync(conn, entity.id, report.as_of, mine, now)
