"""Reconciliation's side of the exception queue: what explains a break, and the one
`reconciliation_break` of each break nothing else explains.

Rules:
- A break is explained only by an unresolved exception of another class that names its
  object (the object's delivery failure, a mapping error on its raw event…), never by a
  `reconciliation_break`, its own or another's: a break stays open until a run finds it
  agreeing, however many runs find it breaking.
- An unexplained break opens one `reconciliation_break` per (entity, check, item),
  fingerprint `recon:<entity>:<check>:<ref>`, with its variance as the money at stake. A
  break already open stays open while its item breaks, explained or not, and keeps its
  status (a correction awaiting approval still awaits it).
- Only a run as of the same day as, or later than, the latest run that found a break can
  resolve it: when it compares the item and finds it agreeing, or when the item is open on
  neither side any more (a document or customer it no longer lists). A period it does not
  compare (another year) stays as it is. A run as of an earlier day looks back: it opens
  what breaks on that day and resolves nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Connection

from finsync.audit import correction
from finsync.domain.errors import ExceptionClass
from finsync.domain.status import ExceptionStatus
from finsync.recon.model import CheckResult, Item
from finsync.storage import exception_log, jsonutil
from finsync.storage.exception_log import NewException

BREAK = ExceptionClass.RECONCILIATION_BREAK
RESOLVED_NOTE = "reconciles on the latest run"
COMPONENT = "recon"  # the actor of a break it resolves: system:recon


@dataclass(frozen=True, slots=True)
class OpenBreak:
    status: ExceptionStatus
    as_of: date | None  # the latest day a run found it breaking (None: not kept then)


def explanations(conn: Connection) -> dict[str, str]:
    """Object ref ("invoice:inv_1") -> the unresolved exception, not a break, naming it."""
    return exception_log.unresolved_objects(conn, excluding=BREAK)


def open_breaks(conn: Connection, entity: str) -> dict[str, OpenBreak]:
    """Fingerprint -> the entity's unresolved reconciliation_break."""
    rows = exception_log.unresolved_by_prefix(conn, BREAK, f"recon:{entity}:")
    return {fingerprint: OpenBreak(status, _seen_as_of(detail))
            for fingerprint, status, detail in rows}


def watched_refs(conn: Connection, entity: str) -> set[str]:
    """The refs of the entity's open breaks: a run keeps their items even when they agree,
    so that `sync` can resolve them."""
    return {_ref(fingerprint) for fingerprint in open_breaks(conn, entity)}


def sync(conn: Connection, entity: str, as_of: date, checks: Sequence[CheckResult],
         now: datetime) -> None:
    """Open, keep and resolve the entity's breaks after a run as of `as_of`."""
    held = open_breaks(conn, entity)
    compared: set[str] = set()
    for check in checks:
        for item in check.items:
            fingerprint = break_fingerprint(entity, check.name, item.ref)
            compared.add(fingerprint)
            found = held.get(fingerprint)
            if item.is_break and found is None and item.explained_by is None:
                _open(conn, fingerprint, check.name, item, as_of, ExceptionStatus.OPEN, now)
            elif found is None or not _may_decide(found, as_of):
                continue
            elif item.is_break:
                _open(conn, fingerprint, check.name, item, as_of, found.status, now)
            else:
                correction.resolve(conn, COMPONENT, fingerprint, RESOLVED_NOTE, now)
    for fingerprint, found in held.items():
        if (fingerprint not in compared and _may_decide(found, as_of)
                and not _ref(fingerprint).startswith("period:")):
            correction.resolve(conn, COMPONENT, fingerprint, RESOLVED_NOTE, now)


def _open(conn: Connection, fingerprint: str, check: str, item: Item, as_of: date,
          status: ExceptionStatus, now: datetime) -> None:
    beyond = ("" if item.counted_elsewhere is None
              else f" ({item.variance.amount} beyond its documents)")
    exception_log.open_exception(conn, NewException(
        BREAK, fingerprint,
        f"{check} {item.ref}: {item.cause}, {item.actual.amount} against "
        f"{item.expected.amount} {item.expected.currency}{beyond}",
        objects=(item.ref,) + ((f"customer:{item.customer_id}",) if item.customer_id else ()),
        amount=abs(item.variance),
        detail=jsonutil.dumps({"as_of": as_of.isoformat(), "item": item.as_dict()}),
        status=status), now)


def _may_decide(found: OpenBreak, as_of: date) -> bool:
    return found.as_of is None or as_of >= found.as_of


def _seen_as_of(detail: str | None) -> date | None:
    if detail is None:
        return None
    return date.fromisoformat(jsonutil.loads(detail)["as_of"])


def break_fingerprint(entity: str, check: str, ref: str) -> str:
    return f"recon:{entity}:{check}:{ref}"


def _ref(fingerprint: str) -> str:
    return fingerprint.split(":", 3)[3]
