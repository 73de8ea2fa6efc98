"""Walking the chain, pure: the first record that was edited, deleted, inserted or reordered.

Rules:
- Records are read in `seq` order. The trail is sound when the seqs run 1, 2, 3… without a
  gap, each stored hash is the hash of its own fields (`chain.record_hash`), and each
  `prev_hash` is the stored hash of the record before (`GENESIS` for the first).
- The walk stops at the first record that breaks one of these, and says what happened from
  the stored hashes, which the usual tampering leaves in place:
  - a gap in `seq`, or a record renumbered down whose predecessor's hash is nowhere in the
    trail: the record at that seq was **deleted** (unless it sits later under another seq:
    moved, so **reordered**);
  - a record that copies another's hash, that sits between a record and the one that links
    to it, or that links to an earlier record than its neighbour: **inserted**;
  - a record that links to a later record, or whose hash verifies at another seq: **reordered**;
  - otherwise its fields (or its link) changed: **edited**. A record whose own hash was
    recomputed after an edit is found by its successor, whose `prev_hash` no record holds
    (when that successor is the last record, it may as well have been appended with a
    made-up link: the message says so).
- What the walk cannot see: records appended at the end with hashes computed by the
  published rule, or a whole tail rewritten from some record on. The signed checkpoints
  (`checkpoint.py`) catch a rewrite of any record up to the last checkpoint, and a deletion
  at the end; after the last checkpoint only the chain protects the records.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from finsync.audit.chain import GENESIS, record_hash

# How far from its own seq a moved record's hash is looked for (a swap or a renumbering).
MOVE_WINDOW = 64

Record = Mapping[str, Any]  # stored fields: `at` a `chain.timestamp`, before/after JSON text


class Tamper(StrEnum):
    EDITED = "edited"
    DELETED = "deleted"
    INSERTED = "inserted"
    REORDERED = "reordered"


@dataclass(frozen=True, slots=True)
class Break:
    kind: Tamper
    seq: int
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "seq": self.seq, "message": self.message}


def first_break(records: Sequence[Record]) -> Break | None:
    """The first tampered record of `records` (in seq order), or None when sound."""
    seen = Counter(str(r["hash"]) for r in records)
    position = {str(r["hash"]): i for i, r in enumerate(records)}
    previous = GENESIS
    for i, record in enumerate(records):
        expected = i + 1
        seq = int(record["seq"])
        if seq != expected:
            return _gap(records[i:], expected, seq)
        sound = record_hash(record) == record["hash"]
        linked = record["prev_hash"] == previous
        if not (sound and linked):
            return _classify(records, i, previous, sound, linked, seen, position)
        previous = str(record["hash"])
    return None


def _classify(records: Sequence[Record], i: int, previous: str, sound: bool, linked: bool,
              seen: Counter[str], position: Mapping[str, int]) -> Break:
    record = records[i]
    seq = int(record["seq"])
    link = str(record["prev_hash"])
    moved = None if sound else _moved_from(record)
    if seen[str(record["hash"])] > 1:
        return Break(Tamper.INSERTED, seq, f"record {seq} is a copy of another record")
    if moved is not None and moved > seq and link not in position:
        return Break(Tamper.DELETED, seq, f"record {seq} is missing: the records after it "
                     f"were renumbered (seq {seq} holds record {moved})")
    if not linked and i >= 1 and link == _hash_before(records, i - 1):
        before = seq - 1
        return Break(Tamper.INSERTED, before, f"record {before} was inserted: record {seq} "
                     f"links past it to record {before - 1}")
    if not linked and position.get(link, -1) > i:
        return Break(Tamper.REORDERED, seq, f"record {seq} links to a later record "
                     f"({int(records[position[link]]['seq'])}): records were reordered")
    following = records[i + 1] if i + 1 < len(records) else None
    if following is not None and (following["prev_hash"] == previous
                                  or _moved_from(following) == seq):
        return Break(Tamper.INSERTED, seq, f"record {seq} was inserted: the record after it "
                     f"links to record {seq - 1}")
    if not linked and link in position:
        return Break(Tamper.INSERTED, seq, f"record {seq} was inserted: it links to record "
                     f"{int(records[position[link]]['seq'])}, not to {seq - 1}")
    if moved is not None:
        return Break(Tamper.REORDERED, seq, f"record {seq} holds record {moved}: records were "
                     "reordered")
    if sound and i >= 1:
        # At the end of the trail this is ambiguous: the last record may have been appended
        # with a made-up link instead. The earlier record is named; the message says both.
        last = "" if following is not None else f" (or record {seq} was inserted)"
        return Break(Tamper.EDITED, seq - 1, f"record {seq - 1} was edited and rehashed: "
                     f"record {seq} links to a hash no record has{last}")
    if not linked and following is None:
        return Break(Tamper.INSERTED, seq, f"record {seq} was inserted: it links to a hash no "
                     "record has")
    if sound:  # the first record, its link changed and its hash recomputed
        return Break(Tamper.EDITED, seq, f"record {seq} was edited: it no longer links to the "
                     "start of the trail")
    return Break(Tamper.EDITED, seq, f"record {seq} was edited: its fields no longer match "
                 "its hash")


def _gap(rest: Sequence[Record], expected: int, seq: int) -> Break:
    """No record at seq `expected`: deleted, unless it sits later under another seq."""
    for record in rest:
        if record_hash({**record, "seq": expected}) == record["hash"]:
            return Break(Tamper.REORDERED, expected, f"record {expected} was moved to seq "
                         f"{int(record['seq'])}")
    return Break(Tamper.DELETED, expected, f"record {expected} is missing: the trail goes "
                 f"from {expected - 1} to {seq}")


def _hash_before(records: Sequence[Record], i: int) -> str:
    return GENESIS if i == 0 else str(records[i - 1]["hash"])


def _moved_from(record: Record) -> int | None:
    """The other seq at which `record`'s stored hash verifies (it was moved), if any."""
    seq = int(record["seq"])
    for other in range(max(1, seq - MOVE_WINDOW), seq + MOVE_WINDOW + 1):
        if other != seq and record_hash({**record, "seq": other}) == record["hash"]:
            return other
    return None
