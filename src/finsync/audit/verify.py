"""`finsync audit verify`: the chain walked, every checkpoint checked, the legacy logs covered.

Rules:
- The chain's first tampered record is named (`walk.first_break`).
- Every checkpoint must carry a signature that verifies with a trusted key, and the trail
  must still hold the record it signed with the signed hash: a trail shorter than a
  checkpoint lost its last records; a different hash means the chain was rewritten up to it.
- Records after the last checkpoint are counted (`unsigned_records`): only the chain
  protects them until the next checkpoint.
- Every `triage_actions` and `ledger_period_log` row has its trail record (`coverage`).
- The verdict is a value; `ok` only when nothing at all was found.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, select

from finsync.audit import coverage
from finsync.audit.chain import GENESIS, timestamp
from finsync.audit.checkpoint import Checkpoint, every
from finsync.audit.signing import Keyring
from finsync.audit.tables import trail
from finsync.audit.walk import Break, Record, first_break

PAGE = 5_000


@dataclass(frozen=True, slots=True)
class CheckpointProblem:
    checkpoint_id: int
    kind: str  # bad_signature | truncated | rewritten
    seq: int
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"checkpoint_id": self.checkpoint_id, "kind": self.kind, "seq": self.seq,
                "message": self.message}


@dataclass(frozen=True, slots=True)
class Verdict:
    records: int
    head_seq: int
    head_hash: str
    tamper: Break | None
    checkpoints: tuple[Checkpoint, ...]
    checkpoint_problems: tuple[CheckpointProblem, ...]
    unsigned_records: int  # records after the last checkpoint's seq (all without one)
    uncovered: tuple[coverage.Uncovered, ...] = field(default=())
    uncovered_count: int = 0

    @property
    def ok(self) -> bool:
        return (self.tamper is None and not self.checkpoint_problems
                and self.uncovered_count == 0)

    def as_json(self) -> dict[str, Any]:
        last = self.checkpoints[-1].as_json() if self.checkpoints else None
        return {"ok": self.ok, "records": self.records,
                "head": {"seq": self.head_seq, "hash": self.head_hash},
                "tamper": None if self.tamper is None else self.tamper.as_json(),
                "checkpoints": len(self.checkpoints), "last_checkpoint": last,
                "checkpoint_problems": [p.as_json() for p in self.checkpoint_problems],
                "unsigned_records": self.unsigned_records,
                "uncovered": [u.as_json() for u in self.uncovered],
                "uncovered_count": self.uncovered_count}


def stored(row: Any) -> dict[str, Any]:
    """A trail row as its hash covers it (`at` as the chain's timestamp text)."""
    record = dict(row)
    record["at"] = timestamp(record["at"])
    return record


def records(conn: Connection, after: int = 0, limit: int | None = None) -> Iterator[Record]:
    """Stored records in seq order from `after` (exclusive), read a page at a time."""
    last = after
    remaining = limit
    while remaining is None or remaining > 0:
        size = PAGE if remaining is None else min(PAGE, remaining)
        page = [stored(r) for r in conn.execute(
            select(trail).where(trail.c.seq > last).order_by(trail.c.seq).limit(size))
            .mappings()]
        yield from page
        if len(page) < size:
            return
        last = int(page[-1]["seq"])
        if remaining is not None:
            remaining -= len(page)


def verify(conn: Connection, keys: Keyring) -> Verdict:
    chain = list(records(conn))
    tamper = first_break(chain)
    head_seq = int(chain[-1]["seq"]) if chain else 0
    head_hash = str(chain[-1]["hash"]) if chain else GENESIS
    signed = tuple(every(conn))
    problems = tuple(_check_checkpoints(signed, chain, keys))
    uncovered, count = coverage.check(conn)
    signed_to = max((c.seq for c in signed), default=0)
    unsigned = sum(1 for r in chain if int(r["seq"]) > signed_to)
    return Verdict(len(chain), head_seq, head_hash, tamper, signed, problems, unsigned,
                   tuple(uncovered), count)


def _check_checkpoints(signed: Sequence[Checkpoint], chain: Sequence[Record],
                       keys: Keyring) -> Iterator[CheckpointProblem]:
    by_seq = {int(r["seq"]): str(r["hash"]) for r in chain}
    by_seq[0] = GENESIS
    head_seq = int(chain[-1]["seq"]) if chain else 0
    for checkpoint in signed:
        name = (f"checkpoint {checkpoint.id} (seq {checkpoint.seq}, signed "
                f"{timestamp(checkpoint.signed_at)})")
        if not keys.verifies(checkpoint.public_key, checkpoint.message(),
                             checkpoint.signature):
            trusted = "" if keys.trusted else " (no public key is configured in [audit])"
            yield CheckpointProblem(checkpoint.id, "bad_signature", checkpoint.seq,
                                    f"{name}: its signature does not verify with a trusted "
                                    f"key{trusted}")
        elif checkpoint.seq > head_seq:
            yield CheckpointProblem(checkpoint.id, "truncated", head_seq + 1,
                                    f"{name}: records {head_seq + 1} to {checkpoint.seq} were "
                                    "deleted")
        elif by_seq.get(checkpoint.seq) != checkpoint.hash:
            yield CheckpointProblem(checkpoint.id, "rewritten", checkpoint.seq,
                                    f"{name}: record {checkpoint.seq} no longer has the signed "
                                    "hash: the trail up to it was rewritten")
