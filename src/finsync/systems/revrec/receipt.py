"""The revenue service's receipts: the answer to a change, kept under its idempotency key.

Rules:
- A receipt row holds the key (unique), the SHA-256 of the request's body (canonical JSON)
  and the answer. The same key again returns the stored answer, marked `replayed`; the same
  key with another body is refused (`IdempotencyMismatchError`), unless the stored hash is
  that of the body as it was sent before a field was added (`legacy.old_bodies`).
- An answer names the revenue contract, each obligation's schedule reference
  (`sch_…@vN`) and, for a modification, its decision: one per modification, or two when it
  is split (partial 606-10-25-12), the separate contract first, joined by " + ".
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select

from finsync.systems.revrec import tables as t
from finsync.systems.revrec.errors import IdempotencyMismatchError
from finsync.systems.revrec.legacy import old_bodies
from finsync.systems.revrec.schedule import schedule_id_for
from finsync.systems.revrec.serial import encode
from finsync.systems.revrec.state import RevenueContractState


@dataclass(frozen=True, slots=True)
class Applied:
    """The answer to a change: the revenue contract, its schedules' versioned references
    (obligation id, `sch_…@vN`), details (treatment, paragraph, reason) and whether the key
    had been seen before."""

    key: str
    subscription_contract_id: str
    revenue_contract_id: str
    event_id: str
    references: tuple[tuple[str, str], ...] = ()
    detail: tuple[tuple[str, str], ...] = ()
    replayed: bool = False


def digest(data: object) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def find(conn: Connection, key: str, body_hash: str, encoded: object = None) -> Applied | None:
    """The stored answer for `key`, or None; another body under the key is refused."""
    row = conn.execute(select(t.receipts.c.body_hash, t.receipts.c.answer).where(
        t.receipts.c.idempotency_key == key)).first()
    if row is None:
        return None
    same = row.body_hash == body_hash or (isinstance(encoded, Mapping) and row.body_hash in {
        digest(old) for old in old_bodies(encoded)})
    if not same:
        raise IdempotencyMismatchError(f"key {key!r} was used for another request")
    return answer_of(row.answer, replayed=True)


def store(conn: Connection, key: str, kind: str, subject: str, body_hash: str,
          applied: Applied) -> None:
    conn.execute(insert(t.receipts), {
        "idempotency_key": key, "kind": kind, "subject": subject, "body_hash": body_hash,
        "answer": json.dumps(encode(applied), sort_keys=True)})


def answer_of(text: str, replayed: bool) -> Applied:
    data = json.loads(text)
    return Applied(data["key"], data["subscription_contract_id"], data["revenue_contract_id"],
                   data["event_id"], tuple((a, b) for a, b in data["references"]),
                   tuple((a, b) for a, b in data["detail"]), replayed)


def applied(key: str, state: RevenueContractState, event_id: str) -> Applied:
    refs = tuple((ob.obligation_id,
                  f"{schedule_id_for(state.revenue_contract_id, ob.obligation_id)}@v{ob.version}")
                 for ob in state.obligations)
    detail: tuple[tuple[str, str], ...] = ()
    parts = [d for d in state.decisions if d.event_id == event_id]
    if parts:
        detail = (("treatment", " + ".join(d.treatment.value for d in parts)),
                  ("paragraph", " + ".join(d.paragraph for d in parts)),
                  ("reason", " + ".join(d.reason for d in parts)))
    return Applied(key, state.contract.id, state.revenue_contract_id, event_id, refs, detail)
