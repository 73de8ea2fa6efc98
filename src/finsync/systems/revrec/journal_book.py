"""The period journals the revenue service answers: stored once a close asks, computed with
their catch-up adjustments before that.

Rules:
- A close's request (`close`) stores the period's journals in one transaction, with what
  each booked per contract and the last change they saw; asked again (any request, any
  reader) the stored journals are answered as stored (`journal_store`).
- A period not stored yet is computed: its own movement (`position_report`) and, for every
  stored period before it, the adjustments of the contracts changed since the latest of
  them was stored (`adjustment`; the latest booked every change it saw, for every period
  before it). Asking for it changes nothing.
- The accounts are those of the legal entity (`AccountMaps`).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine

from finsync.domain.clock import Period
from finsync.domain.journal import JournalEntry
from finsync.systems.revrec import journal_store as js
from finsync.systems.revrec import position_store
from finsync.systems.revrec.adjustment import adjustments
from finsync.systems.revrec.journal import AccountMap, ContractMovement, journal_id, journal_of
from finsync.systems.revrec.position_report import PositionReports


class JournalBook:
    def __init__(self, engine: Engine, reports: PositionReports,
                 accounts: Callable[[str], AccountMap]) -> None:
        self.engine, self._reports, self._accounts = engine, reports, accounts

    def journals(self, legal_entity: str, period: Period) -> tuple[JournalEntry, ...]:
        """The stored journals of the period, else the journals it would get now."""
        with self.engine.connect() as conn:
            if found := js.stored(conn, legal_entity, period):
                return found
        moved = self._movements(legal_entity, period)
        return journal_of(moved, legal_entity, period, self._accounts(legal_entity))

    def close(self, legal_entity: str, period: Period,
              request_id: str) -> tuple[JournalEntry, ...]:
        """The period's journals as the close posts them: stored on the first request. The
        change log's last sequence is read before the movements, so a change that lands
        while they are computed counts as after the close (its adjustment is the difference
        from what was stored: zero if the stored journal already has it)."""
        with self.engine.connect() as conn:
            if found := js.stored(conn, legal_entity, period):
                return found
            seq = js.last_change(conn)
        moved = self._movements(legal_entity, period)
        entries = journal_of(moved, legal_entity, period, self._accounts(legal_entity))
        booked = [(journal_id(legal_entity, period, held.movement.revenue.currency), held)
                  for held in moved if any(js.minors(held.movement))]
        with self.engine.begin() as conn:
            if found := js.stored(conn, legal_entity, period):  # a concurrent close stored first
                return found
            js.store(conn, legal_entity, period, request_id, seq, entries, booked)
        return entries

    def _movements(self, legal_entity: str, period: Period) -> list[ContractMovement]:
        moved = self._reports.period_movements(legal_entity, period)
        with self.engine.connect() as conn:
            closed = js.stored_periods(conn, legal_entity, period.start)
            if not closed:
                return moved
            # The latest stored journal booked every change it saw, for every period before
            # it: only contracts changed after it can differ from what the GL holds.
            changed = js.changed_since(conn, legal_entity, max(seq for _, seq in closed))
            states = position_store.states(conn, sorted(changed))
            booked = js.booked(conn, legal_entity, changed)
        for rc in sorted(states):
            moved += adjustments(states[rc], closed, booked, changed[rc])
        return moved
