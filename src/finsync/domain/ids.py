"""Identifiers.

Rules:
- Canonical ids are immutable strings with a type prefix (`inv_…`).
- Ids that stand for something a source already named derive from that name (uuid5), so the
  same source event always gets the same id, on every machine and every replay.
- The delivery idempotency key is `event_id:target`, made before the first call.
"""

from __future__ import annotations

import uuid
from hashlib import sha1

_NAMESPACE = uuid.UUID("5b0f3f0e-7f4b-4a53-9a0e-6d1c0b1f5e21")
_NAMESPACE_BYTES = _NAMESPACE.bytes


def derive_id(prefix: str, *parts: str) -> str:
    """A stable id from the parts that name the thing in its source: the hex of
    `uuid.uuid5(_NAMESPACE, name)`, computed as RFC 4122 says (SHA-1 of the namespace and
    the name, version 5 and the variant in their bits) without building a `UUID`, which
    cost more than the hash itself."""
    digest = bytearray(sha1(_NAMESPACE_BYTES + "\x1f".join(parts).encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # variant RFC 4122
    return f"{prefix}_{digest.hex()}"


def event_id_for(source: str, source_event_id: str) -> str:
    return derive_id("evt", source, source_event_id)


def delivery_key(event_id: str, target: str) -> str:
    return f"{event_id}:{target}"
