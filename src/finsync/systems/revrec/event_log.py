"""Each revenue contract's event history, kept so a back-dated event can rebuild it in
canonical order (storage; the order itself is `order`, the rebuild `engine.rebuild`).

Rules:
- A contract's history is a baseline state and the events applied to it since. The
  baseline is the state as booked (written with the booking), or, for a contract stored
  before revrec_0003, the state as it stood when its first event after the upgrade came:
  events folded into such a baseline cannot be re-ordered, only the ones kept after it.
- Each event row holds the serialised event (`serial.dumps_event`) and its canonical key
  (effective date, precedence, contract version, event id), written in the same transaction
  as the state it produced; the key (contract, event id) is unique, so a concurrent
  duplicate fails instead of being kept twice.
- An event sorting after every event kept is applied to the state as it stands; one sorting
  before any of them rebuilds the contract from the baseline (`arrive`).
"""

from __future__ import annotations

from sqlalchemy import Connection, insert, select

from finsync.systems.revrec import tables as t
from finsync.systems.revrec.engine import apply_event, rebuild
from finsync.systems.revrec.event import RevenueEvent
from finsync.systems.revrec.order import OrderKey, modification_floor, order_key
from finsync.systems.revrec.serial import dumps_event, dumps_state, loads_event, loads_state
from finsync.systems.revrec.state import RevenueContractState

__all__ = ["arrive", "ensure_baseline", "history"]

_e = t.events


def arrive(conn: Connection, state: RevenueContractState,
           event: RevenueEvent) -> RevenueContractState:
    """The state with `event` applied in its canonical place, and the event kept."""
    if event.event_id in state.applied_event_ids:
        return state
    rc_id = state.revenue_contract_id
    ensure_baseline(conn, state)
    key = order_key(event, modification_floor(state))
    if not _any_after(conn, rc_id, key):
        new = apply_event(state, event)
    else:
        baseline, events = history(conn, rc_id)
        new = rebuild(baseline, (*events, event), state, event)
    if new is not state:
        _keep(conn, rc_id, key, event)
    return new


def ensure_baseline(conn: Connection, state: RevenueContractState) -> None:
    """Write `state` as the contract's baseline unless it has one."""
    rc_id = state.revenue_contract_id
    known = conn.execute(select(t.event_baselines.c.revenue_contract_id).where(
        t.event_baselines.c.revenue_contract_id == rc_id)).first()
    if known is None:
        conn.execute(insert(t.event_baselines), {"revenue_contract_id": rc_id,
                                                 "state": dumps_state(state)})


def history(conn: Connection,
            rc_id: str) -> tuple[RevenueContractState, tuple[RevenueEvent, ...]]:
    """The baseline and the events kept since (in no order: the rebuild sorts them)."""
    baseline = conn.execute(select(t.event_baselines.c.state).where(
        t.event_baselines.c.revenue_contract_id == rc_id)).scalar_one()
    rows = conn.execute(select(_e.c.event_type, _e.c.body).where(
        _e.c.revenue_contract_id == rc_id))
    return loads_state(baseline), tuple(loads_event(kind, body) for kind, body in rows)


def _any_after(conn: Connection, rc_id: str, key: OrderKey) -> bool:
    """Whether an event kept sorts after `key` (compared here, not by the database's
    collation of event ids)."""
    rows = conn.execute(select(_e.c.effective_date, _e.c.precedence, _e.c.contract_version,
                               _e.c.event_id).where(_e.c.revenue_contract_id == rc_id,
                                                    _e.c.effective_date >= key[0]))
    return any((row[0], row[1], row[2], row[3]) > key for row in rows)


def _keep(conn: Connection, rc_id: str, key: OrderKey, event: RevenueEvent) -> None:
    kind, body = dumps_event(event)
    on, precedence, version, event_id = key
    conn.execute(insert(_e), {"revenue_contract_id": rc_id, "event_id": event_id,
                              "effective_date": on, "precedence": precedence,
                              "contract_version": version, "event_type": kind, "body": body})
