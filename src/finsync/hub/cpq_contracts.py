"""Quote-to-cash at a glance: the CPQ contracts the hub holds, a page at a time.

Rules:
- Counts: how many orders (one per CPQ version ordered from billing) are in each order
  state, every state named (zero included), over every contract; `not_applied` adds up
  the ones money waits on (held, refused, failed, mismatch; `sent` is on its way).
- Rows: one per contract (by contract id) with a version the hub holds: its latest CPQ
  version (its event status and quote id), that version's order state (None: not ordered
  yet), the contract's orders per state, and its unresolved exceptions (of every version's
  correlation id) with the money at stake per currency. With a state, only the contracts with an
  order in that state (the total counts them all, the rows are one page).
- It reads only (one snapshot); ids only, never a customer's name; `as_json` is its one
  rendering. One contract's detail is `hub.cpq_status`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from finsync.domain.money import Money
from finsync.domain.status import OrderState
from finsync.storage import cpq_log, exception_log
from finsync.storage.db import reading

PAGE_MAX = 200
NOT_APPLIED = (OrderState.HELD, OrderState.REFUSED, OrderState.FAILED, OrderState.MISMATCH)


@dataclass(frozen=True, slots=True)
class ContractRow:
    contract_id: str
    cpq_version: int | None
    quote_id: str
    event_status: str
    received_at: datetime
    order_state: OrderState | None  # the latest version's order; None: not ordered yet
    orders: tuple[tuple[OrderState, int], ...]  # this contract's orders per state
    unresolved: int  # exceptions of its versions not resolved
    at_stake: tuple[Money, ...]  # their money at stake, one per currency


@dataclass(frozen=True, slots=True)
class ContractPage:
    counts: tuple[tuple[OrderState, int], ...]
    total: int
    state: OrderState | None
    limit: int
    offset: int
    rows: tuple[ContractRow, ...]

    @property
    def not_applied(self) -> int:
        return sum(count for state, count in self.counts if state in NOT_APPLIED)


def not_applied(engine: Engine) -> int:
    """How many CPQ orders are held, refused, failed or in mismatch."""
    with reading(engine) as conn:
        counts = cpq_log.order_counts(conn)
    return sum(counts[state] for state in NOT_APPLIED)


def contracts(engine: Engine, state: OrderState | None = None, limit: int = 50,
              offset: int = 0) -> ContractPage:
    """One page of the CPQ contracts (with `state`: those with an order in it)."""
    if not 1 <= limit <= PAGE_MAX or offset < 0:
        raise ValueError(f"limit must be 1..{PAGE_MAX} and offset >= 0")  # the API checks
    with reading(engine, snapshot=True) as conn:
        counts = cpq_log.order_counts(conn)
        total, latest = cpq_log.contract_page(conn, state, limit, offset)
        orders = cpq_log.orders_of_contracts(conn, [str(r["contract_id"]) for r in latest])
        stakes = exception_log.unresolved_at_stake_by_correlation(
            conn, {q for r in latest for q in r["quote_ids"]})
    by_quote = {o.quote_id: o.state for o in orders}
    rows = []
    for version in latest:
        contract_id = str(version["contract_id"])
        quote_id = str(version["correlation_id"])
        states = [o.state for o in orders if o.contract_id == contract_id]
        unresolved, at_stake = _exposure(stakes, set(version["quote_ids"]))
        rows.append(ContractRow(
            contract_id=contract_id, cpq_version=version["aggregate_version"],
            quote_id=quote_id, event_status=str(version["status"]),
            received_at=version["received_at"], order_state=by_quote.get(quote_id),
            orders=tuple((s, states.count(s)) for s in OrderState if s in states),
            unresolved=unresolved, at_stake=at_stake))
    return ContractPage(tuple(counts.items()), total, state, limit, offset, tuple(rows))


def _exposure(stakes: list[tuple[str, str | None, int, int | None]],
              quotes: set[str]) -> tuple[int, tuple[Money, ...]]:
    """How many unresolved exceptions `quotes` have, and their money at stake per
    currency."""
    count = 0
    minor: dict[str, int] = {}
    for correlation, currency, n, amount_minor in stakes:
        if correlation not in quotes:
            continue
        count += n
        if currency is not None and amount_minor is not None:
            minor[currency] = minor.get(currency, 0) + amount_minor
    return count, tuple(Money.from_minor(m, c) for c, m in sorted(minor.items()))


def as_json(page: ContractPage) -> dict[str, Any]:
    """The page as JSON (ISO timestamps; states by value)."""
    return {
        "counts": {state.value: count for state, count in page.counts},
        "not_applied": page.not_applied,
        "total": page.total,
        "state": None if page.state is None else page.state.value,
        "limit": page.limit,
        "offset": page.offset,
        "contracts": [{
            "contract_id": r.contract_id, "cpq_version": r.cpq_version,
            "quote_id": r.quote_id, "event_status": r.event_status,
            "received_at": r.received_at.isoformat(),
            "order_state": None if r.order_state is None else r.order_state.value,
            "orders": {state.value: count for state, count in r.orders},
            "unresolved": r.unresolved,
            "at_stake": [{"amount": str(m.amount), "currency": m.currency}
                         for m in r.at_stake],
        } for r in page.rows],
    }
