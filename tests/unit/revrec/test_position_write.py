"""Writing only the position rows that changed leaves exactly the rows a full rewrite
leaves: over every golden case written on top of another, and over random histories of
one contract (cases, and states without rows, in random order), on SQLite and PostgreSQL.
A state written again writes no row."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, delete, event, insert, select

from finsync.systems.revrec import tables as t
from finsync.systems.revrec.migrate import upgrade
from finsync.systems.revrec.position import contract_positions
from finsync.systems.revrec.position_write import write
from finsync.systems.revrec.serial import dumps_state
from finsync.systems.revrec.state import RevenueContractState
from tests.unit.revrec.casecheck import CASES, load

RC = "rc_history"
TABLES = (t.positions, t.obligation_positions, t.obligations, t.billings)
STATES = [load(path).state() for path in sorted(CASES.glob("*.json"))]


def _as_one_contract(state: RevenueContractState | None) -> RevenueContractState | None:
    if state is None:
        return None
    return replace(state, revenue_contract_id=RC, contract=replace(state.contract, id="con_h"))


def _rows(conn: Connection) -> dict[str, Any]:
    """Everything the contract's rows hold, in key order."""
    found: dict[str, Any] = {table.name: sorted(
        tuple(r) for r in conn.execute(select(table).where(table.c.revenue_contract_id == RC)))
        for table in TABLES}
    c = t.contracts.c
    found["span"] = tuple(conn.execute(select(
        c.positions_from, c.positions_to, c.transaction_price_minor).where(c.id == RC)).one())
    return found


def _full_rewrite(conn: Connection, state: RevenueContractState | None) -> dict[str, Any]:
    """The rows the old write left: every row deleted, then all of them written (in a
    savepoint rolled back, so the history goes on from the incremental rows)."""
    savepoint = conn.begin_nested()
    for table in TABLES:
        conn.execute(delete(table).where(table.c.revenue_contract_id == RC))
    write(conn, RC, None if state is None else contract_positions(state))
    rows = _rows(conn)
    savepoint.rollback()
    return rows


@contextmanager
def _writes(conn: Connection) -> Iterator[list[str]]:
    """The INSERT, UPDATE and DELETE statements run inside."""
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().split(None, 1)[0].upper() in {"INSERT", "UPDATE", "DELETE"}:
            seen.append(statement)

    event.listen(conn, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(conn, "before_cursor_execute", count)


def _contract(conn: Connection, state: RevenueContractState) -> None:
    conn.execute(insert(t.contracts), {
        "id": RC, "subscription_contract_id": "con_h", "legal_entity": state.legal_entity,
        "currency": state.currency, "customer_id": state.contract.customer_id,
        "contract_version": 1, "row_version": 1, "state": dumps_state(state)})


def _history(engine: Engine, history: list[RevenueContractState | None]) -> None:
    upgrade(engine)
    with engine.begin() as conn:
        first = next(s for s in history if s is not None)
        _contract(conn, first)
        for state in map(_as_one_contract, history):
            write(conn, RC, None if state is None else contract_positions(state))
            assert _rows(conn) == _full_rewrite(conn, state)
        for table in (*TABLES, t.contracts):
            conn.execute(delete(table))


def test_every_case_written_over_another_leaves_the_full_rewrite(engine: Engine) -> None:
    """Each case after the one before it (and the first after the last)."""
    _history(engine, [*STATES, STATES[0], None, STATES[-1]])


@pytest.mark.parametrize("seed", range(4))
def test_random_histories_leave_the_full_rewrite(engine: Engine, seed: int) -> None:
    rng = random.Random(seed)
    choices: list[RevenueContractState | None] = [*STATES, None]
    _history(engine, [rng.choice(choices) for _ in range(12)])


def test_the_same_state_again_writes_no_row(engine: Engine) -> None:
    upgrade(engine)
    state = _as_one_contract(STATES[0])
    assert state is not None
    held = contract_positions(state)
    with engine.begin() as conn:
        _contract(conn, state)
        write(conn, RC, held)
        with _writes(conn) as seen:
            write(conn, RC, held)
        assert len(seen) == 1 and "revrec_contracts" in seen[0]  # the span only
        for table in (*TABLES, t.contracts):
            conn.execute(delete(table))
