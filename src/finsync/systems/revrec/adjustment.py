"""Catch-up adjustments for periods whose journals are stored (closed).

Rules:
- A change that reaches into a stored period (a back-dated credit memo, a late
  modification) never rewrites that period's journal: the difference between the period's
  movement as the engine computes it now and what stored journals booked for it (its own
  journal and earlier adjustments) is booked in the period being journaled, as adjustment
  lines naming the closed period and the events applied to the contract since the latest
  stored journal (the earlier ones are booked already).
- Only contracts changed after a stored period's journal are looked at for it; a contract
  whose difference is zero gives no adjustment.
- The movement is the same arithmetic as the period journal's (`journal.movement`), so an
  adjustment balances by construction and the GL, after it, holds the engine's balances.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

from finsync.domain.clock import Period
from finsync.systems.revrec.journal import ContractMovement, contract_movement
from finsync.systems.revrec.journal_store import minors, movement_of
from finsync.systems.revrec.state import RevenueContractState

Booked = Mapping[tuple[str, date], tuple[int, ...]]


def adjustments(state: RevenueContractState, closed: Sequence[tuple[Period, int]],
                booked: Booked, changes: Sequence[tuple[int, str]]) -> list[ContractMovement]:
    """The contract's adjustments for each stored period (period, last change it saw)."""
    rc = state.revenue_contract_id
    latest = max((seen for _, seen in closed), default=0)
    found = []
    for period, seen in closed:
        later = _named(changes, seen, latest)
        if not later:
            continue
        now = contract_movement(state, period)
        held = booked.get((rc, period.start), (0,) * 6)
        diff = [a - b for a, b in zip(minors(now.movement), held, strict=True)]
        if not any(diff):
            continue
        found.append(ContractMovement(rc, movement_of(diff, state.currency), now.references,
                                      adjusts=f"{period.start:%Y-%m}", changes=later))
    return found


def _named(changes: Sequence[tuple[int, str]], seen: int, latest: int) -> tuple[str, ...]:
    """The events behind a period's adjustment: those after the latest stored journal (the
    earlier ones are booked already, by it or before it), else those after the period's own
    journal; none when nothing changed after the period's journal."""
    after = [event_id for seq, event_id in changes if seq > seen]
    if not after:
        return ()
    newest = [event_id for seq, event_id in changes if seq > latest]
    return tuple(dict.fromkeys(newest or after))

