"""How far a relay may read a log numbered by a database sequence without passing a row that
is still to come.

On PostgreSQL a transaction takes its numbers when it inserts and others see its rows only
when it commits: position 11 may become visible after 12 (two transactions), or never (a
rolled-back insert keeps its number). A relay that moved past 11 when it saw 12 would skip
it for good. So a missing number is passed only once it is known never to fill:

1. it has been missing for `settle_s` (so the transaction that holds it has inserted, and
   has a transaction id, long before we look: it takes the number as it inserts);
2. then the relay notes the transactions of this database still writing (the holder is one
   of them, if it has not ended) and waits until none of them is: a number still missing
   then never fills. Only this database's transactions count, so a long one elsewhere on
   the server (a report, a bulk load) holds nothing back; they are those of sessions the
   relay's role may see (its own role's; all with `pg_read_all_stats`): every finsync
   process writes as the same role.

While a number waits, the relay stops just below it (rows beyond wait; their order holds).
SQLite has one writer at a time and a reader sees whole transactions: a missing number
there never fills and is passed at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

Writers = frozenset[int]  # transaction ids of the database's sessions still writing


class GapWatch:
    """The missing numbers of one log, and when each was first seen missing."""

    def __init__(self, settle_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._settle_s = settle_s
        self._clock = clock
        self._seen: dict[int, float] = {}
        self._noted: dict[int, Writers] = {}

    def safe_end(self, after: int, present: Sequence[int], writers: Writers | None) -> int:
        """The highest number p such that every number in (after, p] is in `present`
        (ascending) or known never to fill; `after` when the first one may still fill.
        Every gap in `present` is watched, not only the first, so that gaps settle together."""
        end = after
        blocked = False
        expected = after + 1
        for number in present:
            if number > expected and not self._never_fills(expected, writers):
                blocked = True
            if not blocked:
                end = number
            expected = number + 1
        self._forget_below(end + 1)
        return end

    def _never_fills(self, start: int, writers: Writers | None) -> bool:
        """Whether the gap that starts at `start` never fills (a gap is known by its first
        number: if that one fills, what remains is a new gap, watched from then)."""
        if writers is None:
            return True
        now = self._clock()
        first = self._seen.setdefault(start, now)
        if now - first < self._settle_s:
            return False
        noted = self._noted.setdefault(start, writers)
        return not noted & writers

    def _forget_below(self, number: int) -> None:
        for seen in [n for n in self._seen if n < number]:
            del self._seen[seen]
            self._noted.pop(seen, None)
