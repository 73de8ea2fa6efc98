"""Gross and net revenue per month, and the adjustments booked for closed periods.

Rules:
- Net revenue per month is the waterfall's (`position_report.revenue_by_month`); contra
  revenue per month is computed from the states of the contracts marked split
  (`journal_store`), the only ones with a concession or a refund liability; gross = net +
  contra (`gross_and_net`), per currency.
- The adjustments are read from the stored journals: per month they were booked in, per
  currency and closed period, the net revenue, contra revenue and deferred revenue (with
  the refund liability) they moved. They are what ties the engine's roll-forward (always
  as known now) to the GL's months.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from itertools import pairwise

from sqlalchemy import Engine

from finsync.domain.clock import Period
from finsync.domain.money import Money
from finsync.systems.revrec import journal_store as js
from finsync.systems.revrec import position_store
from finsync.systems.revrec.contra import contra_to
from finsync.systems.revrec.position_report import EntityWaterfall
from finsync.systems.revrec.timegrid import month_periods


@dataclass(frozen=True, slots=True)
class EntityContra:
    """Contra revenue per calendar month of one legal entity, per currency."""

    months: tuple[Period, ...]
    amounts: tuple[tuple[str, tuple[Money, ...]], ...]  # (currency, one per month)


@dataclass(frozen=True, slots=True)
class EntityRevenue:
    """Gross, contra and net revenue per calendar month of one legal entity, per currency
    (gross = net + contra, net the waterfall's)."""

    months: tuple[Period, ...]
    gross: tuple[tuple[str, tuple[Money, ...]], ...]
    contra: tuple[tuple[str, tuple[Money, ...]], ...]
    net: tuple[tuple[str, tuple[Money, ...]], ...]


def gross_and_net(net: EntityWaterfall, contra: EntityContra) -> EntityRevenue:
    """The waterfall's net revenue with the contra revenue that makes it gross, per currency
    (a currency with no concession has contra zero)."""
    by_currency = dict(contra.amounts)
    zeros = {cur: tuple(Money.zero(cur) for _ in net.months) for cur, _ in net.amounts}
    contras = tuple((cur, by_currency.get(cur, zeros[cur])) for cur, _ in net.amounts)
    gross = tuple((cur, tuple(a + c for a, c in zip(amounts, dict(contras)[cur], strict=True)))
                  for cur, amounts in net.amounts)
    return EntityRevenue(net.months, gross, contras, net.amounts)


@dataclass(frozen=True, slots=True)
class BookedAdjustment:
    """Adjustments booked in `booked_in` for the closed period `adjusts` (one currency):
    net revenue (Cr positive), contra revenue (Dr positive) and deferred revenue with the
    refund liability (Dr positive)."""

    booked_in: date
    adjusts: date
    revenue: Money
    contra: Money
    deferred_revenue: Money


def contra_by_month(engine: Engine, legal_entity: str, start: date,
                    end: date) -> EntityContra:
    months = month_periods(start, end)
    if not months:
        return EntityContra((), ())
    days = [months[0].start, *(m.end for m in months)]
    with engine.connect() as conn:
        ids = js.split_states(conn, legal_entity)
        states = position_store.states(conn, ids)
    sums: dict[str, list[Money]] = {}
    for state in states.values():
        cumulative = [contra_to(state, day) for day in days]
        per = sums.setdefault(state.currency, [Money.zero(state.currency)] * len(months))
        for i, (a, b) in enumerate(pairwise(cumulative)):
            per[i] = per[i] + (b - a)
    return EntityContra(tuple(months), tuple((cur, tuple(sums[cur])) for cur in sorted(sums)))


def adjustments_by_month(engine: Engine, legal_entity: str, start: date,
                         end: date) -> tuple[tuple[str, tuple[BookedAdjustment, ...]], ...]:
    """Per currency, the adjustments booked in the months from `start` to `end`."""
    with engine.connect() as conn:
        rows = js.adjustments_booked(conn, legal_entity, start, end)
    found: dict[str, list[BookedAdjustment]] = {}
    for booked_in, cur, adjusts, sums in rows:
        revenue, contra, deferred, owed = (Money.from_minor(v, cur) for v in sums[:4])
        found.setdefault(cur, []).append(
            BookedAdjustment(booked_in, adjusts, revenue, contra, deferred - owed))
    return tuple((cur, tuple(found[cur])) for cur in sorted(found))
