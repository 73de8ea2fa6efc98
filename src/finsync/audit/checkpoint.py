"""Signed checkpoints: the chain's head, signed daily (the daily job) and at each close.

Rules:
- A checkpoint is taken under the trail's append lock, so the head it signs is a record
  that exists, and no append lands between reading the head and recording the checkpoint.
- An empty trail is signed too (seq 0, `GENESIS`): a later deletion of every record shows.
- Checkpoints are only added; `verify` checks every one against the trail.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select

from finsync.audit.chain import GENESIS, checkpoint_message, timestamp
from finsync.audit.signing import Keyring
from finsync.audit.tables import checkpoints, trail
from finsync.audit.trail import LOCK
from finsync.storage.db import serialize, transaction

DAILY = "daily"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    id: int
    seq: int
    hash: str
    signed_at: datetime
    reason: str
    public_key: str
    signature: str

    def message(self) -> bytes:
        return checkpoint_message(self.seq, self.hash, timestamp(self.signed_at), self.reason)

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "seq": self.seq, "hash": self.hash,
                "signed_at": timestamp(self.signed_at), "reason": self.reason,
                "public_key": self.public_key, "signature": self.signature}


def close_reason(legal_entity: str, period: str) -> str:
    return f"close:{legal_entity}:{period}"


def head(conn: Connection) -> tuple[int, str]:
    """(seq, hash) of the trail's last record; (0, GENESIS) when it is empty."""
    row = conn.execute(select(trail.c.seq, trail.c.hash).where(
        trail.c.seq == select(func.max(trail.c.seq)).scalar_subquery())).first()
    return (0, GENESIS) if row is None else (int(row.seq), str(row.hash))


def sign(engine: Engine, keys: Keyring, reason: str, at: datetime) -> Checkpoint:
    """Sign the head now, in a transaction of its own."""
    with transaction(engine) as conn:
        serialize(conn, LOCK)
        seq, head_hash = head(conn)
        public_key, signature = keys.sign(
            checkpoint_message(seq, head_hash, timestamp(at), reason))
        new_id = conn.execute(insert(checkpoints).returning(checkpoints.c.id).values(
            seq=seq, hash=head_hash, signed_at=at, reason=reason, public_key=public_key,
            signature=signature)).scalar_one()
    return Checkpoint(int(new_id), seq, head_hash, at, reason, public_key, signature)


def every(conn: Connection) -> list[Checkpoint]:
    rows = conn.execute(select(checkpoints).order_by(checkpoints.c.id)).mappings()
    return [Checkpoint(int(r["id"]), int(r["seq"]), str(r["hash"]), r["signed_at"],
                       str(r["reason"]), str(r["public_key"]), str(r["signature"]))
            for r in rows]
