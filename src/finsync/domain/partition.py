"""Partitions: where an aggregate's work goes when the hub is spread over processes.

Rules:
- An aggregate's partition key (`hub.acceptance.partition_key`) hashes to a stable 62-bit
  integer: the first 8 bytes of its BLAKE2b digest, big-endian, the top two bits cleared
  (it fits a signed 64-bit column, and every process and machine computes the same number).
  Python's `hash` is salted per process and is never used for this.
- The partition of a key is its hash modulo the number of partitions, so the count can
  change without rewriting any stored hash (`deliveries.partition_hash`).
- `streaming.subjects` routes events by the same function: the hub (which fills the
  outbox's hash) sits below `streaming` and cannot import it.
"""

from __future__ import annotations

import hashlib

PARTITION_HASH_BITS = 62
_MASK = (1 << PARTITION_HASH_BITS) - 1


def partition_hash(partition_key: str) -> int:
    """The stable hash of a partition key, in 0 .. 2**62 - 1."""
    digest = hashlib.blake2b(partition_key.encode("utf-8", "surrogatepass"),
                             digest_size=8).digest()
    return int.from_bytes(digest, "big") & _MASK


def partition_of(partition_key: str, partitions: int) -> int:
    """The partition (0 .. partitions - 1) a key belongs to."""
    if partitions < 1:
        raise ValueError(f"the number of partitions must be at least 1, not {partitions}")
    return partition_hash(partition_key) % partitions
