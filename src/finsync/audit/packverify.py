#!/usr/bin/env python3
"""Verify a finsync audit evidence pack with the Python standard library only.

`finsync audit export` copies this file into the pack as `verify.py`. Run it in the pack's
folder (no finsync, no database, no third-party package needed):

    python3 verify.py [PACK_DIR] [--public-key HEX] [--json]

It checks that
1. every record's hash is SHA-256 of the canonical JSON of its other fields, and each record
   links to the one before (the first to `anchor_prev_hash` of manifest.json);
2. every checkpoint's Ed25519 signature verifies (RFC 8032, implemented below) with a key
   listed in public_keys.txt, and the record at the checkpoint's seq has its hash;
3. which records a signed checkpoint covers: a checkpoint commits to its record and, by
   the chain, to every record before it.
Pin the key you were given out of band with --public-key: a pack that signs with any other
key fails.

Exit status: 0 verified and every record covered by a signature; 2 verified, but the last
records are after the last checkpoint (not covered by a signature yet); 1 failed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

GENESIS = "0" * 64
FIELDS = ("seq", "at", "actor", "action", "object_type", "object_id", "before", "after",
          "reason", "correlation_id", "prev_hash")
CHECKPOINT_FORMAT = "finsync-audit-checkpoint/1"
UNSIGNED_TAIL_EXIT = 2

# --------------------------------------------------------------------------------------
# Ed25519 signature verification, from RFC 8032 (section 5.1 and the reference code of
# section 6). Points are in extended homogeneous coordinates (X, Y, Z, T), x = X/Z, y = Y/Z,
# x * y = T/Z. Verification only: nothing secret is handled, so constant time is not needed.

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493  # the order of the base point
Point = tuple[int, int, int, int]


def _inverse(x: int) -> int:
    return pow(x, P - 2, P)


D = -121665 * _inverse(121666) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def _add(a: Point, b: Point) -> Point:
    """Section 5.1.4: addition on the twisted Edwards curve (also used for doubling)."""
    e1 = (a[1] - a[0]) * (b[1] - b[0]) % P
    e2 = (a[1] + a[0]) * (b[1] + b[0]) % P
    c = 2 * a[3] * b[3] * D % P
    d = 2 * a[2] * b[2] % P
    e, f, g, h = e2 - e1, d - c, d + c, e2 + e1
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _multiply(scalar: int, point: Point) -> Point:
    result: Point = (0, 1, 1, 0)  # the neutral element
    while scalar > 0:
        if scalar & 1:
            result = _add(result, point)
        point = _add(point, point)
        scalar >>= 1
    return result


def _equal(a: Point, b: Point) -> bool:
    return ((a[0] * b[2] - b[0] * a[2]) % P == 0
            and (a[1] * b[2] - b[1] * a[2]) % P == 0)


def _recover_x(y: int, sign: int) -> int | None:
    """Section 5.1.3, steps 2 to 4: x from y and the sign bit, None if there is none."""
    if y >= P:
        return None
    x2 = (y * y - 1) * _inverse(D * y * y + 1) % P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P != 0:
        return None
    if (x & 1) != sign:
        x = P - x
    return x


def _decode_point(data: bytes) -> Point | None:
    """Section 5.1.3: a 32-byte little-endian y with the sign of x in the top bit."""
    if len(data) != 32:
        return None
    y = int.from_bytes(data, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = _recover_x(y, sign)
    if x is None:
        return None
    return (x, y, 1, x * y % P)


_BASE_Y = 4 * _inverse(5) % P
_BASE_X = _recover_x(_BASE_Y, 0)
assert _BASE_X is not None
BASE: Point = (_BASE_X, _BASE_Y, 1, _BASE_X * _BASE_Y % P)


def ed25519_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Section 5.1.7: [S]B = R + [k]A, k = SHA-512(R || A || M) mod L."""
    if len(public_key) != 32 or len(signature) != 64:
        return False
    a = _decode_point(public_key)
    r = _decode_point(signature[:32])
    if a is None or r is None:
        return False
    s = int.from_bytes(signature[32:], "little")
    if s >= L:
        return False
    k = int.from_bytes(hashlib.sha512(signature[:32] + public_key + message).digest(),
                       "little") % L
    return _equal(_multiply(s, BASE), _add(r, _multiply(k, a)))


# --------------------------------------------------------------------------------------
# The chain and the checkpoints, as finsync defines them (finsync/audit/chain.py)


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def record_hash(record: dict[str, Any]) -> str:
    body = canonical({name: record[name] for name in FIELDS})
    return hashlib.sha256(body.encode()).hexdigest()


def checkpoint_message(checkpoint: dict[str, Any]) -> bytes:
    body = {"format": CHECKPOINT_FORMAT, "seq": checkpoint["seq"],
            "hash": checkpoint["hash"], "signed_at": checkpoint["signed_at"],
            "reason": checkpoint["reason"]}
    return canonical(body).encode()


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def check_chain(records: list[dict[str, Any]], first_seq: int, anchor: str) -> list[str]:
    """Problems of the chain, the first one only (what follows a break says nothing)."""
    previous = anchor
    for offset, record in enumerate(records):
        seq = first_seq + offset
        if record.get("seq") != seq:
            return [f"record {seq}: missing (the next record in the pack is "
                    f"{record.get('seq')})"]
        if record_hash(record) != record["hash"]:
            return [f"record {seq}: its fields do not match its hash (edited)"]
        if record["prev_hash"] != previous:
            return [f"record {seq}: it does not link to the record before it"]
        previous = record["hash"]
    return []


def check_checkpoints(checkpoints: list[dict[str, Any]], by_seq: dict[int, str],
                      keys: set[str], last_seq: int) -> list[str]:
    problems = []
    for checkpoint in checkpoints:
        name = f"checkpoint at seq {checkpoint['seq']} ({checkpoint['signed_at']})"
        key = str(checkpoint["public_key"]).lower()
        if key not in keys:
            problems.append(f"{name}: signed by a key that is not trusted ({key})")
            continue
        if not ed25519_verify(bytes.fromhex(key), checkpoint_message(checkpoint),
                              bytes.fromhex(checkpoint["signature"])):
            problems.append(f"{name}: the signature does not verify")
            continue
        seq = int(checkpoint["seq"])
        if seq in by_seq and by_seq[seq] != checkpoint["hash"]:
            problems.append(f"{name}: record {seq} does not have the signed hash")
        elif seq not in by_seq and seq <= last_seq:
            problems.append(f"{name}: record {seq} is not in the pack")
    return problems


def verify(pack: Path, pinned: str | None) -> dict[str, Any]:
    manifest = json.loads((pack / "manifest.json").read_text(encoding="utf-8"))
    records = _lines(pack / "records.jsonl")
    checkpoints = _lines(pack / "checkpoints.jsonl")
    listed = {line.strip().lower() for line in
              (pack / "public_keys.txt").read_text(encoding="utf-8").splitlines()
              if line.strip() and not line.startswith("#")}
    keys = {pinned.lower()} if pinned else listed
    first_seq = int(manifest["first_seq"])
    anchor = GENESIS if first_seq == 1 else str(manifest["anchor_prev_hash"])
    problems = check_chain(records, first_seq, anchor)
    last_seq = first_seq + len(records) - 1
    by_seq = {int(r["seq"]): str(r["hash"]) for r in records}
    problems += check_checkpoints(checkpoints, by_seq, keys, last_seq)
    signed = [int(c["seq"]) for c in checkpoints if first_seq <= int(c["seq"]) <= last_seq]
    covered_to = max(signed) if signed else first_seq - 1
    return {"pack": str(pack), "records": len(records), "first_seq": first_seq,
            "last_seq": last_seq, "checkpoints": len(checkpoints),
            "signed_through_seq": covered_to, "unsigned_records": last_seq - covered_to,
            "problems": problems, "verified": not problems}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify a finsync audit evidence pack.")
    parser.add_argument("pack", nargs="?", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--public-key", help="the signing key's public key (64 hex digits) "
                        "you were given out of band; only it is trusted")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    try:
        result = verify(args.pack, args.public_key)
    except (OSError, ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
        result = {"pack": str(args.pack), "verified": False, "unsigned_records": None,
                  "problems": [f"the pack cannot be read ({type(exc).__name__}: {exc})"]}
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        for problem in result["problems"]:
            print(f"FAILED: {problem}")
        if result["unsigned_records"] is not None:
            print(f"{result['records']} record(s), seq {result['first_seq']} to "
                  f"{result['last_seq']}; {result['checkpoints']} checkpoint(s); signed "
                  f"through seq {result['signed_through_seq']}; "
                  f"{result['unsigned_records']} record(s) after the last checkpoint")
        print("VERIFIED" if result["verified"] else "NOT VERIFIED")
    if not result["verified"]:
        return 1
    return UNSIGNED_TAIL_EXIT if result["unsigned_records"] else 0


if __name__ == "__main__":
    sys.exit(main())
