"""Subjects, partitions and message ids of the NATS transport: pure functions, no I/O.

Rules:
- Subjects (`<ns>` is `TransportSettings.namespace`):
  `<ns>.raw.<source>` (stream `<NS>_RAW`), `<ns>.events.<entity>.<p>` (`<NS>_EVENTS`),
  `<ns>.out.events.<entity>.<type…>` and `<ns>.out.milestones.<kind…>` (`<NS>_OUT`). A type
  or kind keeps its dots as subject levels (`invoice.issued` is two tokens), so that a
  downstream consumer can subscribe to `<ns>.out.events.*.invoice.>`.
- Every name that comes from data goes through `token`: `[A-Za-z0-9_-]` kept, every other
  byte of its UTF-8 percent-escaped (`%2E`), the empty name `_`. A token never holds `.`,
  `*`, `>` or whitespace, so data can never add a subject level or a wildcard; distinct
  non-empty names give distinct tokens. An event without a legal entity travels as `_`.
- The partition of a key is `partition_hash(key) % partitions`; the hash is blake2b's first
  8 bytes (big-endian) masked to 62 bits: stable across processes, machines and Python
  versions (never Python's `hash`, which is salted per process), and it fits a signed
  64-bit column (`deliveries.partition_hash`).
- A raw message id (`Nats-Msg-Id`) is `<source>/<source event id>`, with every byte outside
  printable ASCII, and `%` itself (and `/` in the source), percent-escaped: an id cannot
  break a header line, and two ids differ whenever the sources or their ids differ.
"""

from __future__ import annotations

import re

# The partition hash lives in the domain, where the outbox reads it too.
from finsync.domain.legal_entity import entity_of as entity_of
from finsync.domain.partition import PARTITION_HASH_BITS
from finsync.domain.partition import partition_hash as partition_hash
from finsync.domain.partition import partition_of as partition_of

HASH_MASK = (1 << PARTITION_HASH_BITS) - 1
EMPTY_TOKEN = "_"
_TOKEN_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_ID_SAFE = frozenset(range(0x21, 0x7F)) - {ord("%")}  # printable ASCII but `%`, no space
_WIRE_NAME = re.compile(r"[^.]+(\.[^.]+)*")  # dotted levels, none empty


def token(text: str) -> str:
    """`text` as one subject token (see the rules)."""
    if not text:
        return EMPTY_TOKEN
    return "".join(chr(byte) if byte in _TOKEN_SAFE else f"%{byte:02X}"
                   for byte in text.encode("utf-8"))


def raw_subject(ns: str, source: str) -> str:
    return f"{ns}.raw.{token(source)}"


def raw_filter(ns: str) -> str:
    return f"{ns}.raw.>"


def event_subject(ns: str, entity: str | None, p: int) -> str:
    return f"{ns}.events.{token(entity or '')}.{_partition(p)}"


def events_filter(ns: str) -> str:
    return f"{ns}.events.>"


def partition_filter(ns: str, p: int) -> str:
    """Every entity's events of partition `p`: a partition consumer's filter."""
    return f"{ns}.events.*.{_partition(p)}"


def out_event_subject(ns: str, entity: str | None, type: str) -> str:
    return f"{ns}.out.events.{token(entity or '')}.{_levels(type)}"


def out_milestone_subject(ns: str, kind: str) -> str:
    return f"{ns}.out.milestones.{_levels(kind)}"


def out_filter(ns: str) -> str:
    return f"{ns}.out.>"


def raw_msg_id(source: str, source_event_id: str) -> str:
    return f"{_id_part(source, _ID_SAFE - {ord('/')})}/{_id_part(source_event_id, _ID_SAFE)}"



def _partition(p: int) -> str:
    if p < 0:
        raise ValueError(f"a partition is 0 or more, not {p}")
    return str(p)


def _levels(name: str) -> str:
    """A dotted wire name (`invoice.issued`) as subject levels, each one a token."""
    if _WIRE_NAME.fullmatch(name) is None:
        raise ValueError(f"{name!r} is not a dotted name (non-empty levels)")
    return ".".join(token(level) for level in name.split("."))


def _id_part(text: str, safe: frozenset[int]) -> str:
    return "".join(chr(byte) if byte in safe else f"%{byte:02X}"
                   for byte in text.encode("utf-8"))
