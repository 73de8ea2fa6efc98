"""`finsync audit export --from --to DIR`: an evidence pack an auditor verifies alone.

Rules:
- The pack holds the records appended from `--from` to `--to` (UTC days, both included),
  as a contiguous run of seqs, extended to the first checkpoint at or after the last of
  them, so that a signature covers every record of the pack (records after the last
  checkpoint stay in, and the pack's verify.py says they are not signed yet).
- Files: records.jsonl (each record's stored fields, `before`/`after` as the JSON text that
  was hashed), checkpoints.jsonl (those inside the pack's seqs), public_keys.txt (the
  trusted keys, hex), manifest.json (the seqs, the anchor: the `prev_hash` of the first
  record; SHA-256 of every other file), README.md and verify.py (`packverify.py`: Python's
  standard library only).
- The target folder must be empty or absent: a pack is written whole, never merged.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, select

from finsync.audit import packverify
from finsync.audit.chain import CHAIN_VERSION, GENESIS, timestamp
from finsync.audit.checkpoint import every
from finsync.audit.signing import Keyring
from finsync.audit.tables import trail
from finsync.audit.verify import records
from finsync.domain.errors import FinsyncError

PACK_FORMAT = "finsync-audit-pack/1"


class ExportError(FinsyncError):
    code = "audit_export_refused"


@dataclass(frozen=True, slots=True)
class Pack:
    directory: Path
    first_seq: int
    last_seq: int
    records: int
    checkpoints: int
    unsigned_records: int

    def as_json(self) -> dict[str, Any]:
        return {"directory": str(self.directory), "first_seq": self.first_seq,
                "last_seq": self.last_seq, "records": self.records,
                "checkpoints": self.checkpoints, "unsigned_records": self.unsigned_records}


def export(conn: Connection, keys: Keyring, start: date, end: date, directory: Path,
           now: datetime) -> Pack:
    if end < start:
        raise ExportError(f"--to {end} is before --from {start}")
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise ExportError(f"{directory} is not an empty folder: a pack is written whole")
    first, last = _seqs(conn, start, end)
    signed = [c for c in every(conn) if c.seq >= first]
    closing = [c.seq for c in signed if c.seq >= last]
    if closing and last >= first:
        last = min(closing)
    chain = list(records(conn, after=first - 1, limit=max(0, last - first + 1)))
    inside = [c for c in signed if c.seq <= last]
    covered = max((c.seq for c in inside), default=first - 1)
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "records.jsonl": "".join(_line(r) for r in chain),
        "checkpoints.jsonl": "".join(_line(c.as_json()) for c in inside),
        "public_keys.txt": "# trusted Ed25519 public keys, hex; compare them with the key "
                           "you were given\n" + "".join(f"{k}\n" for k in sorted(keys.trusted)),
        "README.md": README,
        "verify.py": Path(packverify.__file__).read_text(),
    }
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    manifest = {"format": PACK_FORMAT, "chain_version": CHAIN_VERSION,
                "from": start.isoformat(), "to": end.isoformat(),
                "exported_at": timestamp(now), "first_seq": first,
                "last_seq": first + len(chain) - 1, "records": len(chain),
                "anchor_prev_hash": str(chain[0]["prev_hash"]) if chain else GENESIS,
                "checkpoints": len(inside),
                "sha256": {name: hashlib.sha256(text.encode()).hexdigest()
                           for name, text in files.items()}}
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True)
                                             + "\n", encoding="utf-8")
    last_seq = first + len(chain) - 1
    return Pack(directory, first, last_seq, len(chain), len(inside),
                max(0, last_seq - max(covered, first - 1)))


def _seqs(conn: Connection, start: date, end: date) -> tuple[int, int]:
    """The first and last seq appended in [start, end] (UTC days); (n, n-1) when none."""
    since = datetime.combine(start, time(), UTC)
    until = datetime.combine(end + timedelta(days=1), time(), UTC)
    low, high = conn.execute(select(func.min(trail.c.seq), func.max(trail.c.seq)).where(
        trail.c.at >= since, trail.c.at < until)).one()
    if low is None:
        after = conn.execute(select(func.min(trail.c.seq)).where(trail.c.at >= until)) \
            .scalar()
        head = conn.execute(select(func.max(trail.c.seq))).scalar() or 0
        first = int(after) if after is not None else int(head) + 1
        return first, first - 1
    return int(low), int(high)


def _line(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False) + "\n"


README = """\
# finsync audit evidence pack

This folder is an extract of finsync's audit trail: who did what to which object, why and
when, hash-chained and signed. You can check it without finsync and without its database.

## Verify

    python3 verify.py --public-key <the 64-hex-digit key you were given>

`verify.py` uses the Python standard library only (3.9 or later is enough; no package to
install). It prints `VERIFIED` and exits 0 when every check passes and a signed checkpoint
covers every record; exit 2 means verified, but the last records came after the last
checkpoint (not signed yet); exit 1 means a check failed, and the lines above say which
record or checkpoint. Without `--public-key` it trusts the keys in `public_keys.txt`: get
the key from the controller or the system's owner out of band and pin it, since whoever
could alter this pack could also replace that file.

## What it checks

1. `records.jsonl`: one record a line, in `seq` order, with no gap. Each record's `hash` is
   SHA-256 of the canonical JSON (keys sorted, no spaces, UTF-8) of its fields `seq`, `at`,
   `actor`, `action`, `object_type`, `object_id`, `before`, `after`, `reason`,
   `correlation_id`, `prev_hash`; `before` and `after` are the JSON texts that were hashed.
   Each `prev_hash` is the previous record's `hash`; the first record's is
   `anchor_prev_hash` in `manifest.json` (64 zeros when the pack starts at seq 1).
2. `checkpoints.jsonl`: each checkpoint says "record `seq` has hash `hash`" and is signed
   with Ed25519 over the canonical JSON of `{"format": "finsync-audit-checkpoint/1", "seq",
   "hash", "signed_at", "reason"}`. Because every record carries its predecessor's hash, a
   valid signature on record N's hash vouches for every record up to N.
3. `manifest.json` lists the SHA-256 of the other files (a check against damage in
   transit, not a signature).

Checkpoints are signed daily and at each period close (`reason` says which).
"""
