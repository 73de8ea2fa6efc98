"""The position rows of the revenue engine written: with the state, only what changed.

Rules:
- `write` brings every row of one contract (positions, obligation positions, obligations,
  billings) and its span on the contract row to what `contract_positions` made of its
  state, on the caller's connection: the service calls it in the transaction that saves the
  state, so the rows never lag the state. A contract without rows (None) keeps none, with a
  NULL span (`position_store` reads it from its state).
- Only rows that differ from those stored are written: per table one read of the
  contract's rows, then at most one delete (rows gone), one update (rows changed) and one
  insert (rows new). An invoice changes the balances from its day on, not the months
  before it nor what each obligation recognised; the rows left are those a full rewrite
  would leave (tests compare both over the golden cases and random histories).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table, bindparam, delete, insert, select, tuple_, update

from finsync.systems.revrec import tables as t
from finsync.systems.revrec.position import ContractPositions

c = t.contracts


def write(conn: Connection, revenue_contract_id: str, held: ContractPositions | None) -> None:
    """Bring one contract's rows to `held`: only the rows that differ from those stored are
    written (a billing changes the balances from its day on, not the months before it, nor
    what each obligation recognised)."""
    rc = revenue_contract_id
    span = ({"positions_from": None, "positions_to": None, "transaction_price_minor": None}
            if held is None else
            {"positions_from": held.first_day, "positions_to": held.last_day,
             "transaction_price_minor": held.transaction_price_minor})
    conn.execute(update(c).where(c.c.id == rc).values(span))
    for table, keys, rows in _rows(rc, held):
        _bring(conn, rc, table, keys, rows)


def _rows(rc: str, held: ContractPositions | None
          ) -> list[tuple[Table, tuple[str, ...], list[dict[str, Any]]]]:
    """Per table, its key columns (after the contract's id) and the rows `held` makes."""
    if held is None:
        return [(t.positions, ("day",), []), (t.obligation_positions, ("ordinal", "day"), []),
                (t.obligations, ("ordinal",), []), (t.billings, ("seq",), [])]
    return [
        (t.positions, ("day",), [{
            "revenue_contract_id": rc, "day": r.day, "billed_minor": r.billed,
            "recognised_minor": r.recognised, "deferred_revenue_minor": r.deferred_revenue,
            "contract_asset_minor": r.contract_asset,
            "unbilled_receivable_minor": r.unbilled_receivable} for r in held.positions]),
        (t.obligation_positions, ("ordinal", "day"), [{
            "revenue_contract_id": rc, "ordinal": i, "day": r.day, "recognised_minor": v}
            for r in held.positions for i, v in enumerate(r.obligations)]
            if held.obligations else []),
        (t.obligations, ("ordinal",), [{
            "revenue_contract_id": rc, "ordinal": o.ordinal, "obligation_id": o.obligation_id,
            "schedule_id": o.schedule_id, "version": o.version,
            "allocated_minor": o.allocated_minor} for o in held.obligations]),
        (t.billings, ("seq",), [{
            "revenue_contract_id": rc, "seq": b.seq, "document_id": b.document_id,
            "obligation_id": b.obligation_id, "issued_on": b.issued_on,
            "amount_minor": b.amount_minor} for b in held.billings]),
    ]


def _bring(conn: Connection, rc: str, table: Table, keys: tuple[str, ...],
           rows: Sequence[dict[str, Any]]) -> None:
    """One table's rows of the contract made `rows`: one read, then the rows gone deleted,
    the changed ones updated and the new ones inserted, each a statement at most."""
    mine = table.c.revenue_contract_id == rc
    stored = {tuple(r[k] for k in keys): dict(r)
              for r in conn.execute(select(table).where(mine)).mappings()}
    wanted = {tuple(r[k] for k in keys): r for r in rows}
    gone = [key for key in stored if key not in wanted]
    if gone:
        conn.execute(delete(table).where(mine, tuple_(*(table.c[k] for k in keys)).in_(gone)))
    changed = [r for key, r in wanted.items() if key in stored and stored[key] != r]
    if changed:
        values = [name for name in changed[0] if name != "revenue_contract_id" and
                  name not in keys]
        conn.execute(update(table).where(
            mine, *(table.c[k] == bindparam(f"b_{k}") for k in keys)).values(
            {name: bindparam(f"b_{name}") for name in values}),
            [{f"b_{name}": value for name, value in r.items()} for r in changed])
    new = [r for key, r in wanted.items() if key not in stored]
    if new:
        conn.execute(insert(table), new)
