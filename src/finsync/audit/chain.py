"""The hash chain, pure: what a record's hash covers, and the hash of the empty trail.

A record's hash is SHA-256 over the canonical JSON (sorted keys, no spaces, UTF-8) of every
field but `hash` itself, `prev_hash` and `seq` included. Changing any field changes the hash;
a removed, inserted or swapped record no longer links to its neighbour. The evidence pack's
standalone `verify.py` computes the same bytes with the standard library only, so this
definition is a published format: change it only with a new `CHAIN_VERSION`.

A checkpoint states "the record at `seq` has hash `hash`" (seq 0 and `GENESIS`: the empty
trail); its signature covers the canonical JSON of `checkpoint_body`, published alike.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

CHAIN_VERSION = 1
GENESIS = "0" * 64
FIELDS = ("seq", "at", "actor", "action", "object_type", "object_id", "before", "after",
          "reason", "correlation_id", "prev_hash")


@dataclass(frozen=True, slots=True)
class Entry:
    """What an audited action says, before the trail numbers and chains it. `before` and
    `after` are JSON-ready values (the object's state around the action), or None."""

    actor: str
    action: str
    object_type: str
    object_id: str
    reason: str
    before: Any = None
    after: Any = None
    correlation_id: str | None = None


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def timestamp(at: datetime) -> str:
    """Microsecond UTC ISO 8601, the one spelling of a record's time."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record_hash(record: Mapping[str, Any]) -> str:
    """The hash of a record given as its stored fields (`at` already a timestamp string,
    `before` and `after` already canonical JSON text or None)."""
    body = canonical({name: record[name] for name in FIELDS})
    return hashlib.sha256(body.encode()).hexdigest()


CHECKPOINT_FORMAT = "finsync-audit-checkpoint/1"


def checkpoint_message(seq: int, head_hash: str, signed_at: str, reason: str) -> bytes:
    """The bytes a checkpoint's Ed25519 signature covers (`signed_at` a `timestamp`)."""
    body = {"format": CHECKPOINT_FORMAT, "seq": seq, "hash": head_hash,
            "signed_at": signed_at, "reason": reason}
    return canonical(body).encode()
