"""The revenue engine's reports over its position rows: positions, period movements (the
journals' input, `journal_book`), the waterfall and remaining performance obligations, per
contract and per legal entity.

Rules:
- Each report reads the rows `position_store` keeps and aggregates them in SQL; it gives
  exactly what the same report computed from the states gives (`balance`, `schedule`,
  `journal`).
- What the rows do not answer (a day that is not a month start inside a contract's span, a
  contract without rows) is computed from that contract's state alone, loaded by id: the
  others are never decoded. So are a split contract's movements (`journal_store`: contra
  revenue and a refund liability are not in the rows).
- One connection per report, so a report reads its rows together.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from itertools import pairwise

from sqlalchemy import Connection, Engine

from finsync.domain.clock import Period
from finsync.domain.money import Money
from finsync.systems.revrec import journal_store
from finsync.systems.revrec import position_store as store
from finsync.systems.revrec.balance import ContractBalances, balances
from finsync.systems.revrec.errors import UnknownRevenueContractError
from finsync.systems.revrec.journal import (
    ContractMovement,
    Movement,
    contract_movement,
)
from finsync.systems.revrec.position import Position, balances_of, money, position_of
from finsync.systems.revrec.schedule import (
    RemainingPerformanceObligations,
    Waterfall,
    WaterfallRow,
    recognised_to,
    remaining_performance_obligations,
    waterfall,
)
from finsync.systems.revrec.state import RevenueContractState
from finsync.systems.revrec.timegrid import add_months, month_periods

CHUNK = 1_000  # contracts per read of `positions_over`


@dataclass(frozen=True, slots=True)
class EntityWaterfall:
    """Revenue per calendar month of one legal entity, per currency."""

    months: tuple[Period, ...]
    amounts: tuple[tuple[str, tuple[Money, ...]], ...]  # (currency, one per month)


@dataclass(frozen=True, slots=True)
class EntityBalances:
    """One legal entity's contract balances summed per currency at each month start of
    `days` (00:00, as `balance`), and the credits issued in each month (positive)."""

    days: tuple[date, ...]
    balances: tuple[tuple[str, tuple[ContractBalances, ...]], ...]  # (currency, per day)
    credited: tuple[tuple[str, tuple[Money, ...]], ...]  # (currency, one per month)


@dataclass(frozen=True, slots=True)
class CurrencyPositions:
    """One currency's contracts of a legal entity at a day, summed: how many, their
    balances (`ContractBalances` of each added up) and the credits they took before it."""

    currency: str
    contracts: int
    balances: ContractBalances
    credited: Money


@dataclass(frozen=True, slots=True)
class PricedContract:
    """One contract's transaction price and its credits before a day (by document)."""

    subscription_contract_id: str
    customer_id: str
    transaction_price: Money
    credits: tuple[tuple[str, Money], ...]


class PositionReports:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- per legal entity ---------------------------------------------------------------
    def positions(self, legal_entity: str, day: date) -> list[Position]:
        with self.engine.connect() as conn:
            stored = store.stored_at(conn, legal_entity, day)
            credits = store.credits(conn, legal_entity, day)
            states = store.states(conn, [s.revenue_contract_id for s in stored
                                         if not s.held(day)])
        return [_position(s, day, credits.get(s.revenue_contract_id, ())) if s.held(day)
                else position_of(states[s.revenue_contract_id], day) for s in stored
                if s.held(day) or s.revenue_contract_id in states]

    def positions_over(self, legal_entity: str,
                       days: Sequence[date]) -> Iterator[list[Position]]:
        """Per revenue contract (in id order), its positions at each of `days`, read a chunk
        of contracts at a time (memory does not grow with the book)."""
        with self.engine.connect() as conn:
            chunk = store.contract_ids(conn, legal_entity, limit=CHUNK)
            while chunk:
                stored = store.stored_over(conn, chunk, days)
                credits = store.credits_of(conn, chunk)
                unheld = [rc for rc, per in stored.items()
                          if not all(per[d].held(d) for d in days)]
                states = store.states(conn, unheld)
                for rc in chunk:
                    if rc in states:
                        yield [position_of(states[rc], d) for d in days]
                    elif rc in stored:
                        yield [_position(stored[rc][d], d, _credits_before(credits.get(rc, []), d))
                               for d in days]
                chunk = (store.contract_ids(conn, legal_entity, after=chunk[-1], limit=CHUNK)
                         if len(chunk) == CHUNK else [])

    def totals(self, legal_entity: str, day: date) -> list[CurrencyPositions]:
        """Per currency (in code order), the entity's contracts at `day` summed: the held
        ones in SQL, the others from their states, a page at a time."""
        with self.engine.connect() as conn:
            sums = store.totals_at(conn, legal_entity, day)
            found = {cur: [money(v, cur) for v in amounts[1:]]
                     for cur, amounts in sums.items()}
            for page in store.unheld_at(conn, legal_entity, day):
                for state in store.states(conn, page).values():
                    _add_position(found[state.currency], position_of(state, day))
        return [CurrencyPositions(cur, sums[cur][0], ContractBalances(day, *amounts[:-1]),
                                  amounts[-1]) for cur, amounts in sorted(found.items())]

    def prices(self, legal_entity: str, day: date) -> Iterator[PricedContract]:
        """Per contract by subscription contract id (code-point order), its price and
        credits before `day`: from its rows, or from its state for one without rows (an
        amount finer than a minor unit: rare, so loaded one by one)."""
        with self.engine.connect() as conn:
            for s in store.prices_at(conn, legal_entity, day):
                if s.transaction_price_minor is None:
                    state = store.states(conn, [s.revenue_contract_id])[s.revenue_contract_id]
                    at = position_of(state, day)
                    yield PricedContract(at.subscription_contract_id, at.customer_id,
                                         at.transaction_price, at.credits)
                    continue
                cur = s.currency
                yield PricedContract(s.subscription_contract_id, s.customer_id,
                                     money(s.transaction_price_minor, cur),
                                     tuple((doc, money(v, cur)) for doc, v in s.credits))

    def period_movements(self, legal_entity: str, period: Period) -> list[ContractMovement]:
        """Each contract's movement over the period, in id order; a contract whose journal
        splits contra revenue or a refund liability (`journal_store`) from its state."""
        with self.engine.connect() as conn:
            moved = store.movements(conn, legal_entity, period.start, period.end)
            refs = store.references(conn, legal_entity)
            split = journal_store.split_ids(conn, [m.revenue_contract_id for m in moved])
            states = store.states(conn, [m.revenue_contract_id for m in moved
                                         if not m.held or m.revenue_contract_id in split])
        found: list[ContractMovement] = []
        for m in moved:
            if m.held and m.revenue_contract_id not in split:
                cur = m.currency
                move = Movement(*(Money.from_minor(v, cur) for v in (
                    m.revenue, m.deferred_revenue, m.contract_asset, m.unbilled_receivable)))
                found.append(ContractMovement(m.revenue_contract_id, move,
                                              refs.get(m.revenue_contract_id, ())))
            elif m.revenue_contract_id in states:
                found.append(contract_movement(states[m.revenue_contract_id], period))
        return found

    def revenue_by_month(self, legal_entity: str, start: date, end: date) -> EntityWaterfall:
        months = month_periods(start, end)
        if not months:
            return EntityWaterfall((), ())
        days = [months[0].start, *(m.end for m in months)]
        sums = self.recognised_over(legal_entity, days)
        amounts = tuple((cur, tuple(Money.from_minor(b - a, cur) for a, b in pairwise(per)))
                        for cur, per in sums.items())
        return EntityWaterfall(months, amounts)

    def recognised_over(self, legal_entity: str, days: Sequence[date]) -> dict[str, list[int]]:
        """Per currency (in code order), the revenue recognised before each of `days`
        (ascending month starts), in minor units, summed over the entity's contracts: the
        rows in SQL, the contracts without rows from their states."""
        with self.engine.connect() as conn:
            sums = store.recognised_by_month(conn, legal_entity, days)
            states = store.states(conn, store.unheld(conn, legal_entity, days[0]))
        for state in states.values():
            for day in days:
                sums[day][state.currency] = (sums[day].get(state.currency, 0)
                                             + recognised_to(state, day).to_minor())
        currencies = sorted({cur for per in sums.values() for cur in per})
        return {cur: [sums[day].get(cur, 0) for day in days] for cur in currencies}

    def balances_by_month(self, legal_entity: str, start: date, end: date) -> EntityBalances:
        """The entity's balances at the start of each month from `start`'s to `end`'s and at
        the end of the last, per currency, and the credits issued in each month."""
        months = month_periods(start, end)
        if not months:
            return EntityBalances((), (), ())
        days = (months[0].start, *(m.end for m in months))
        with self.engine.connect() as conn:
            sums = store.balances_by_day(conn, legal_entity, days)
            issued = store.credits_issued(conn, legal_entity, days[0], days[-1])
            states = store.states(conn, store.unheld(conn, legal_entity, days[0]))
        width = len(store.BALANCE_COLUMNS)
        held = {d: {cur: list(v) for cur, v in per.items()} for d, per in sums.items()}
        for state in states.values():
            for day in days:
                at = balances(state, day)
                amounts = held[day].setdefault(state.currency, [0] * width)
                for i, money_at in enumerate((at.billed, at.recognised, at.deferred_revenue,
                                              at.contract_asset, at.unbilled_receivable)):
                    amounts[i] += money_at.to_minor()
            for billing in state.billings:
                if billing.amount.amount < 0 and days[0] <= billing.issued_on < days[-1]:
                    issued.append((billing.issued_on, state.currency,
                                   -billing.amount.to_minor()))
        currencies = sorted({cur for per in held.values() for cur in per})
        zero = [0] * width
        totals = tuple((cur, tuple(ContractBalances(day, *(
            Money.from_minor(v, cur) for v in held[day].get(cur, zero))) for day in days))
            for cur in currencies)
        return EntityBalances(days, totals, _credited_per_month(months, currencies, issued))

    def remaining_by_currency(self, legal_entity: str,
                              as_of: date) -> dict[str, RemainingPerformanceObligations]:
        later = add_months(as_of, 12)
        with self.engine.connect() as conn:
            prices = store.transaction_prices(conn, legal_entity)
            now = store.recognised_by_currency(conn, legal_entity, as_of)
            ahead = store.recognised_by_currency(conn, legal_entity, later)
            unheld_now = set(store.unheld(conn, legal_entity, as_of))
            unheld_later = set(store.unheld(conn, legal_entity, later))
            unmaterialised = set(store.unheld(conn, legal_entity, date(as_of.year, 1, 1)))
            states = store.states(conn, unheld_now | unheld_later | unmaterialised)
        for rc, state in states.items():
            cur = state.currency
            if rc in unmaterialised:
                prices[cur] = prices.get(cur, 0) + state.transaction_price.to_minor()
            if rc in unheld_now:
                now[cur] = now.get(cur, 0) + recognised_to(state, as_of).to_minor()
            if rc in unheld_later:
                ahead[cur] = ahead.get(cur, 0) + recognised_to(state, later).to_minor()
        found = {}
        for cur in sorted(prices.keys() | now.keys() | ahead.keys()):
            remaining = prices.get(cur, 0) - now.get(cur, 0)
            current = ahead.get(cur, 0) - now.get(cur, 0)
            found[cur] = RemainingPerformanceObligations(
                as_of, Money.from_minor(current, cur), Money.from_minor(remaining - current, cur))
        return found

    # -- per contract -------------------------------------------------------------------
    def balances(self, subscription_contract_id: str, day: date) -> ContractBalances:
        with self.engine.connect() as conn:
            found = self._stored(conn, subscription_contract_id, day)
            if found.held(day):
                return balances_of(found.row, day, found.currency)
            return balances(self._state(conn, found), day)

    def waterfall(self, subscription_contract_id: str, start: date, end: date) -> Waterfall:
        months = month_periods(start, end)
        with self.engine.connect() as conn:
            found = self._stored(conn, subscription_contract_id, start)
            if found.positions_from is None or found.positions_to is None or not months:
                return waterfall(self._state(conn, found), start, end)
            ids, per = store.obligation_rows(conn, found.revenue_contract_id)
        first, last = found.positions_from, found.positions_to
        days = [months[0].start, *(m.end for m in months)]
        rows = []
        for ordinal, obligation_id in enumerate(ids):
            held = per.get(ordinal, {})
            cumulative = [held[min(d, last)] if d >= first else 0 for d in days]
            rows.append(WaterfallRow(obligation_id, tuple(
                Money.from_minor(b - a, found.currency) for a, b in pairwise(cumulative))))
        return Waterfall(months, tuple(rows))

    def remaining_performance_obligations(
            self, subscription_contract_id: str, as_of: date) -> RemainingPerformanceObligations:
        later = add_months(as_of, 12)
        with self.engine.connect() as conn:
            now = self._stored(conn, subscription_contract_id, as_of)
            ahead = self._stored(conn, subscription_contract_id, later)
            if (not now.held(as_of) or not ahead.held(later)
                    or now.transaction_price_minor is None):
                return remaining_performance_obligations(self._state(conn, now), as_of)
        cur = now.currency
        done = balances_of(now.row, as_of, cur).recognised
        within = balances_of(ahead.row, later, cur).recognised
        remaining = Money.from_minor(now.transaction_price_minor, cur) - done
        return RemainingPerformanceObligations(as_of, within - done,
                                               remaining - (within - done))

    @staticmethod
    def _stored(conn: Connection, subscription_contract_id: str, day: date) -> store.Stored:
        found = store.stored_at(conn, "", day, subscription_contract_id)
        if not found:
            raise UnknownRevenueContractError(
                f"no revenue contract for {subscription_contract_id} (not booked yet)")
        return found[0]

    @staticmethod
    def _state(conn: Connection, found: store.Stored) -> RevenueContractState:
        return store.states(conn, [found.revenue_contract_id])[found.revenue_contract_id]


def _credited_per_month(months: Sequence[Period], currencies: Sequence[str],
                        issued: Sequence[tuple[date, str, int]]
                        ) -> tuple[tuple[str, tuple[Money, ...]], ...]:
    sums = {cur: [0] * len(months) for cur in currencies}
    for day, currency, amount in issued:
        at = next(i for i, m in enumerate(months) if day in m)
        sums.setdefault(currency, [0] * len(months))[at] += amount
    return tuple((cur, tuple(Money.from_minor(v, cur) for v in sums[cur]))
                 for cur in sorted(sums))


def _add_position(sums: list[Money], at: Position) -> None:
    """Add one contract's position to a currency's [billed, recognised, deferred revenue,
    contract asset, unbilled receivable, credited]."""
    b = at.balances
    for i, amount in enumerate((b.billed, b.recognised, b.deferred_revenue, b.contract_asset,
                                b.unbilled_receivable)):
        sums[i] = sums[i] + amount
    for _, amount in at.credits:
        sums[5] = sums[5] + amount


def _credits_before(credits: list[tuple[str, date, int]],
                    day: date) -> tuple[tuple[str, int], ...]:
    """Credits issued before `day`, summed per document, in document order."""
    summed: dict[str, int] = {}
    for document, issued_on, amount in credits:
        if issued_on < day:
            summed[document] = summed.get(document, 0) - amount
    return tuple(sorted(summed.items()))


def _position(found: store.Stored, day: date,
              credits: tuple[tuple[str, int], ...]) -> Position:
    cur = found.currency
    assert found.transaction_price_minor is not None  # held rows always have a price
    return Position(found.revenue_contract_id, found.subscription_contract_id,
                    found.customer_id, cur, money(found.transaction_price_minor, cur),
                    balances_of(found.row, day, cur),
                    tuple((doc, money(v, cur)) for doc, v in credits))
