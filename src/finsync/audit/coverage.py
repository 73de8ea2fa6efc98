"""The legacy logs the trail covers: every row must have its trail record, same values.

Two logs predate the trail and stay where their readers expect them; the trail covers them,
so a row edited, inserted or deleted with SQL there no longer agrees with a chained record:

- `triage_actions` (the exception queue's actions): each row N has trail records of object
  ("triage_action", "N"); the latest one's `after` holds the row's `TRIAGE_FIELDS` with the
  same values (`triage_action_state` builds it: writers use it, this check reads it).
- `ledger_period_log` (the embedded ledger's period changes): each row has, in order, a
  trail record of object ("period", "<entity>:<YYYY-MM>") by the same actor, with
  `before` {"status": from_status}, `after` {"status": to_status} and the same reason
  (`period_entry` builds it). Period records without a log row are fine (a ledger with no
  embedded log, a Tryton one, has only the trail).

Checks return what they find as values, up to `LIMIT` of each log, with the total count.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, inspect, select

from finsync.audit.chain import Entry
from finsync.audit.tables import trail
from finsync.storage import jsonutil
from finsync.storage.schema import triage_actions
from finsync.systems.ledger.tables import period_log

LIMIT = 20
TRIAGE_FIELDS = ("exception_id", "action", "requested_by", "reason", "status", "decided_by")
PERIOD_ACTIONS = {"open": "period.reopen", "soft_closed": "period.soft_close",
                  "closed": "period.close"}


@dataclass(frozen=True, slots=True)
class Uncovered:
    log: str  # the legacy table
    row_id: int
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"log": self.log, "row_id": self.row_id, "message": self.message}


def triage_action_state(row: Mapping[Any, Any]) -> dict[str, Any]:
    """The `after` of a trail record about a triage action, from its row's values."""
    state = {name: row[name] for name in TRIAGE_FIELDS}
    state["exception_id"] = int(state["exception_id"])
    state["status"] = str(state["status"])
    return state


def period_entry(legal_entity: str, period: str, from_status: str, to_status: str,
                 actor: str, reason: str | None) -> Entry:
    """The trail record of one period change, as the coverage check matches it."""
    return Entry(actor, PERIOD_ACTIONS[to_status], "period", f"{legal_entity}:{period}",
                 reason or "", before={"status": from_status}, after={"status": to_status})


def check(conn: Connection) -> tuple[list[Uncovered], int]:
    """What the legacy logs hold that the trail does not (the first `LIMIT` of each log),
    and how many in all."""
    found: list[Uncovered] = []
    total = 0
    for finder in (_triage_actions, _period_log):
        for count, item in enumerate(finder(conn)):
            total += 1
            if count < LIMIT:
                found.append(item)
    return found, total


def _records(conn: Connection, object_type: str) -> Iterator[Mapping[Any, Any]]:
    rows = conn.execute(select(trail.c.object_id, trail.c.actor, trail.c.reason,
                               trail.c.before, trail.c.after)
                        .where(trail.c.object_type == object_type).order_by(trail.c.seq))
    yield from rows.mappings()


def _loads(text: str | None) -> Any:
    return None if text is None else jsonutil.loads(text)


def _triage_actions(conn: Connection) -> Iterator[Uncovered]:
    latest: dict[str, Any] = {}
    for record in _records(conn, "triage_action"):
        latest[str(record["object_id"])] = _loads(record["after"])
    rows = conn.execute(select(triage_actions).order_by(triage_actions.c.id)).mappings()
    for row in rows:
        after = latest.get(str(row["id"]))
        if after is None:
            yield Uncovered("triage_actions", int(row["id"]), "no trail record")
            continue
        expected = triage_action_state(row)
        differ = [name for name in TRIAGE_FIELDS
                  if not isinstance(after, dict) or after.get(name) != expected[name]]
        if differ:
            yield Uncovered("triage_actions", int(row["id"]),
                            f"differs from its trail record in {', '.join(differ)}")


def _period_log(conn: Connection) -> Iterator[Uncovered]:
    if not inspect(conn).has_table(period_log.name):
        return
    pending: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for record in _records(conn, "period"):
        before, after = _loads(record["before"]), _loads(record["after"])
        pending[str(record["object_id"])].append((
            _status(before), _status(after), record["actor"], record["reason"]))
    rows = conn.execute(select(period_log).order_by(period_log.c.id)).mappings()
    for row in rows:
        key = f"{row['entity']}:{row['period']}"
        wanted = (row["from_status"], row["to_status"], row["actor"], row["reason"] or "")
        records = pending[key]
        # In order: the first of the object's records not yet matched that agrees covers
        # the row (records between are those no log row has: a request, a Tryton change).
        if wanted not in records:
            yield Uncovered("ledger_period_log", int(row["id"]),
                            f"no trail record of {key} {row['from_status']} -> "
                            f"{row['to_status']} by {row['actor']} with that reason")
            continue
        del records[:records.index(wanted) + 1]


def _status(state: Any) -> Any:
    return state.get("status") if isinstance(state, dict) else None
