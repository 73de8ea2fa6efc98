"""Stored period journals, the change log, and contracts whose journals split contra.

Rules:
- A period's journals (one per currency) are stored when a close asks for them (the close
  posts exactly those) and answered from the store ever after, byte for byte: the entry's
  JSON is kept as it was first written and decoded on every read. A stored period is never
  recomputed, also after the ERP period is reopened (the ERP holds it posted, and a posted
  entry is fixed by a later one, never changed).
- Beside each stored journal, what it booked per contract (`journal_movements`): its own
  period's movement, and each adjustment under the closed period it catches up. What the
  GL holds for a contract and a closed period is the sum of those rows.
- Every saved change of a contract appends (contract, event) to the change log in the
  transaction that saves it; a stored journal keeps the log's last sequence it saw, so the
  contracts changed after it are those with a later sequence.
- A contract that has a concession or, at some date, consideration billed beyond its price
  is marked `split`: its journals are computed from its state (the position rows hold
  neither contra revenue nor a refund liability).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import date, timedelta

from sqlalchemy import Connection, func, insert, select

from finsync.domain import codec
from finsync.domain.clock import Period
from finsync.domain.journal import JournalEntry
from finsync.domain.money import Money
from finsync.systems.revrec import tables as t
from finsync.systems.revrec.balance import billed_to
from finsync.systems.revrec.contra import has_concession, price_at
from finsync.systems.revrec.journal import ContractMovement, Movement
from finsync.systems.revrec.state import RevenueContractState

MOVEMENT_COLUMNS = ("revenue_minor", "contra_minor", "deferred_revenue_minor",
                    "refund_liability_minor", "contract_asset_minor",
                    "unbilled_receivable_minor")
CHUNK = 500  # ids per IN list


def needs_split(state: RevenueContractState) -> bool:
    if any(has_concession(ob) for ob in state.obligations):
        return True
    days = {b.issued_on + timedelta(days=1) for b in state.billings}
    days |= {s.effective.date() + timedelta(days=1) for ob in state.obligations
             for s in ob.segments if s.effective is not None}
    return any((billed_to(state, d) - price_at(state, d)).amount > 0 for d in sorted(days))


def record_change(conn: Connection, state: RevenueContractState, event_id: str) -> None:
    """In the transaction that saves `state`: the change log, and the split mark."""
    rc = state.revenue_contract_id
    conn.execute(insert(t.changes), {"revenue_contract_id": rc, "event_id": event_id})
    marked = conn.execute(select(t.split_contracts.c.revenue_contract_id).where(
        t.split_contracts.c.revenue_contract_id == rc)).first() is not None
    if not marked and needs_split(state):  # a mark is kept: test the state only without one
        conn.execute(insert(t.split_contracts), {"revenue_contract_id": rc})


def split_ids(conn: Connection, ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    s = t.split_contracts
    for i in range(0, len(ids), CHUNK):
        found |= {str(rc) for (rc,) in conn.execute(select(s.c.revenue_contract_id).where(
            s.c.revenue_contract_id.in_(list(ids[i:i + CHUNK]))))}
    return found


def last_change(conn: Connection) -> int:
    return int(conn.execute(select(func.coalesce(func.max(t.changes.c.seq), 0))).scalar_one())


def stored(conn: Connection, legal_entity: str, period: Period) -> tuple[JournalEntry, ...]:
    j = t.journals
    rows = conn.execute(select(j.c.entry).where(
        j.c.legal_entity == legal_entity, j.c.period_start == period.start,
        j.c.period_end == period.end).order_by(j.c.currency))
    return tuple(decode_entry(text) for (text,) in rows)



def stored_periods(conn: Connection, legal_entity: str,
                   before: date) -> list[tuple[Period, int]]:
    """Each stored period of the entity that ends by `before`, with the last change its
    journals saw, in period order."""
    j = t.journals
    rows = conn.execute(select(j.c.period_start, j.c.period_end, func.min(j.c.change_seq))
                        .where(j.c.legal_entity == legal_entity, j.c.period_end <= before)
                        .group_by(j.c.period_start, j.c.period_end).order_by(j.c.period_start))
    return [(Period(a, b), int(seq)) for a, b, seq in rows]


def changed_since(conn: Connection, legal_entity: str,
                  seq: int) -> dict[str, list[tuple[int, str]]]:
    """The entity's contracts changed after `seq`: (sequence, event id) of each change."""
    ch, c = t.changes, t.contracts
    rows = conn.execute(select(ch.c.revenue_contract_id, ch.c.seq, ch.c.event_id)
                        .select_from(ch.join(c, c.c.id == ch.c.revenue_contract_id))
                        .where(c.c.legal_entity == legal_entity, ch.c.seq > seq)
                        .order_by(ch.c.seq))
    found: dict[str, list[tuple[int, str]]] = {}
    for rc, n, event_id in rows:
        found.setdefault(str(rc), []).append((int(n), str(event_id)))
    return found


def booked(conn: Connection, legal_entity: str,
           ids: Iterable[str]) -> dict[tuple[str, date], tuple[int, ...]]:
    """What stored journals booked per (contract, period start), summed."""
    m = t.journal_movements
    wanted = sorted(ids)
    found: dict[tuple[str, date], tuple[int, ...]] = {}
    for i in range(0, len(wanted), CHUNK):
        rows = conn.execute(select(m.c.revenue_contract_id, m.c.adjusts_start,
                                   *(func.sum(m.c[n]) for n in MOVEMENT_COLUMNS))
                            .where(m.c.legal_entity == legal_entity,
                                   m.c.revenue_contract_id.in_(wanted[i:i + CHUNK]))
                            .group_by(m.c.revenue_contract_id, m.c.adjusts_start))
        for rc, start, *sums in rows:
            found[(str(rc), start)] = tuple(int(v) for v in sums)
    return found


def minors(move: Movement) -> tuple[int, ...]:
    zero = Money.zero(move.revenue.currency)
    return (move.revenue.to_minor(), (move.contra or zero).to_minor(),
            move.deferred_revenue.to_minor(), (move.refund_liability or zero).to_minor(),
            move.contract_asset.to_minor(), move.unbilled_receivable.to_minor())


def movement_of(values: Sequence[int], currency: str) -> Movement:
    revenue, contra, deferred, owed, asset, unbilled = (Money.from_minor(v, currency)
                                                        for v in values)
    return Movement(revenue, deferred, asset, unbilled, None if contra.is_zero else contra,
                    None if owed.is_zero else owed)


def store(conn: Connection, legal_entity: str, period: Period, request_id: str, seq: int,
          entries: Sequence[JournalEntry],
          moved: Sequence[tuple[str, ContractMovement]]) -> None:
    """The period's journals (and what each booked per contract: (journal id, movement))."""
    if not entries:  # nothing moved: nothing to keep (engine.md, "Left out")
        return
    conn.execute(insert(t.journals), [{
        "id": e.id, "legal_entity": legal_entity, "period_start": period.start,
        "period_end": period.end, "currency": e.lines[0].amount.currency,
        "entry": encode_entry(e), "request_id": request_id, "change_seq": seq}
        for e in entries])
    rows = []
    for journal_id, held in moved:
        start = period.start if held.adjusts is None else date.fromisoformat(
            f"{held.adjusts}-01")
        rows.append({"journal_id": journal_id, "legal_entity": legal_entity,
                     "revenue_contract_id": held.revenue_contract_id, "adjusts_start": start,
                     **dict(zip(MOVEMENT_COLUMNS, minors(held.movement), strict=True))})
    if rows:
        conn.execute(insert(t.journal_movements), rows)


def encode_entry(entry: JournalEntry) -> str:
    return json.dumps(codec.encode(entry), sort_keys=True, separators=(",", ":"))


def decode_entry(text: str) -> JournalEntry:
    return codec.decode(JournalEntry, json.loads(text), "revrec_journals.entry")


def split_states(conn: Connection, legal_entity: str) -> list[str]:
    """The entity's contracts marked split, in id order."""
    s, c = t.split_contracts, t.contracts
    return [str(rc) for (rc,) in conn.execute(
        select(s.c.revenue_contract_id).select_from(s.join(c, c.c.id == s.c.revenue_contract_id))
        .where(c.c.legal_entity == legal_entity).order_by(s.c.revenue_contract_id))]


def adjustments_booked(conn: Connection, legal_entity: str, start: date,
                       end: date) -> list[tuple[date, str, date, tuple[int, ...]]]:
    """(booked in period, currency, closed period adjusted, sums of `MOVEMENT_COLUMNS`) of
    the adjustments stored journals of periods starting in [start, end) booked."""
    m, j = t.journal_movements, t.journals
    rows = conn.execute(
        select(j.c.period_start, j.c.currency, m.c.adjusts_start,
               *(func.sum(m.c[n]) for n in MOVEMENT_COLUMNS))
        .select_from(m.join(j, j.c.id == m.c.journal_id))
        .where(j.c.legal_entity == legal_entity, j.c.period_start >= start,
               j.c.period_start < end, m.c.adjusts_start != j.c.period_start)
        .group_by(j.c.period_start, j.c.currency, m.c.adjusts_start)
        .order_by(j.c.period_start, j.c.currency, m.c.adjusts_start))
    return [(booked_in, str(cur), adjusted, tuple(int(v) for v in sums))
            for booked_in, cur, adjusted, *sums in rows]
