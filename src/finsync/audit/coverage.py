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

Rows written before the trail existed (a database upgraded to it) are adopted once,
`finsync audit adopt` (`adopt`): one record each, actor `system:audit`, action
`legacy.adopt`, holding the row's values (object "triage_action"/"N", or
"ledger_period_log"/"N" with `period_state`). Only rows older than the trail's first record
and with no record of their own are adopted, and never again once a row was adopted: an
edited row that had its record stays named.

Checks return what they find as values, up to `LIMIT` of each log, with the total count.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, inspect, select

from finsync.audit import trail as chain_trail
from finsync.audit.chain import Entry
from finsync.audit.tables import trail
from finsync.domain.errors import FinsyncError
from finsync.storage import jsonutil
from finsync.storage.db import serialize
from finsync.storage.schema import triage_actions
from finsync.systems.ledger.tables import period_log

LIMIT = 20
DIFFERS = "differs from its trail record"
TRIAGE_FIELDS = ("exception_id", "action", "requested_by", "reason", "status", "decided_by")
ADOPTER, ADOPT_ACTION = "system:audit", "legacy.adopt"
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


class AlreadyAdoptedError(FinsyncError):
    code = "already_adopted"


def period_state(row: Mapping[Any, Any]) -> dict[str, Any]:
    """The `after` of an adopted period-log row."""
    return {name: row[name] for name in ("entity", "period", "from_status", "to_status",
                                         "actor", "reason")}


def adopt(conn: Connection, at: datetime) -> dict[str, int]:
    """Record, once, the legacy rows older than the trail that have no record of their own;
    how many of each log."""
    done = conn.execute(select(trail.c.seq).where(trail.c.action == ADOPT_ACTION).limit(1))\
        .scalar()
    if done is not None:
        raise AlreadyAdoptedError(f"the legacy logs were adopted already (record {done})")
    serialize(conn, chain_trail.LOCK)  # no append lands between the check and the records
    first = conn.execute(select(func.min(trail.c.at))).scalar()
    adopted = {"triage_actions": 0, "ledger_period_log": 0}
    for item in [*_triage_actions(conn), *_period_log(conn)]:
        row = _legacy_row(conn, item)
        if item.message == DIFFERS or (first is not None and row["written_at"] >= first):
            continue
        object_type, state = (("triage_action", triage_action_state(row))
                              if item.log == "triage_actions"
                              else (item.log, period_state(row)))
        chain_trail.append(conn, Entry(
            ADOPTER, ADOPT_ACTION, object_type, str(item.row_id),
            "recorded before the audit trail existed", after=state), at)
        adopted[item.log] += 1
    return adopted


def _legacy_row(conn: Connection, item: Uncovered) -> dict[str, Any]:
    table, written = ((triage_actions, triage_actions.c.requested_at)
                      if item.log == "triage_actions" else (period_log, period_log.c.at))
    row = conn.execute(select(table, written.label("written_at"))
                       .where(table.c.id == item.row_id)).mappings().one()
    return dict(row)


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
                            f"{DIFFERS} in {', '.join(differ)}")


def _period_log(conn: Connection) -> Iterator[Uncovered]:
    if not inspect(conn).has_table(period_log.name):
        return
    pending: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for record in _records(conn, "period"):
        before, after = _loads(record["before"]), _loads(record["after"])
        pending[str(record["object_id"])].append((
            _status(before), _status(after), record["actor"], record["reason"]))
    adopted = {str(r["object_id"]): _loads(r["after"])
               for r in _records(conn, period_log.name)}
    rows = conn.execute(select(period_log).order_by(period_log.c.id)).mappings()
    for row in rows:
        if adopted.get(str(row["id"])) == period_state(row):
            continue
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
