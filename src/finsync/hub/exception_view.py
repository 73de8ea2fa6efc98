"""What a reader sees of an exception: its texts and the payload it is about.

Rules:
- A reader without `pii:read` (the caller passes `can_read_pii` from its principal) sees
  the texts of an exception (summary, detail, resolution note, the reasons of its actions)
  without e-mail addresses or credentials, and its payload with every sensitive field
  replaced by its class (`domain.sensitive.redact`). A body that is not JSON cannot be
  classified field by field: without `pii:read` only its size is shown.
- With `pii:read` the texts and the payload are shown as stored (credentials were never
  stored: `storage.text.error_text`, `domain.headers`).
- The payload is the canonical event's (the codec's encoding) when the exception names an
  event, else the raw body it names, at most `BODY_VIEW_MAX_BYTES` of it. A raw body may
  be JSON that no UTF-8 document can carry (an escaped lone surrogate, `"\\ud800"`, which
  intake refused as `unpaired_surrogate`): such a character is shown as U+FFFD.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import Connection

from finsync.domain import codec
from finsync.domain.errors import DomainError
from finsync.domain.sensitive import redact, redact_text
from finsync.storage import event_log, exception_log, raw_log

TEXT_FIELDS = ("summary", "detail", "resolution_note")


class UnknownExceptionError(DomainError):
    code = "unknown_exception"

BODY_VIEW_MAX_BYTES = 1 << 20
_SURROGATE = re.compile("[\ud800-\udfff]")


def detail(conn: Connection, exception_id: int, can_read_pii: bool) -> dict[str, Any]:
    """One exception with the payload it is about, as this reader may see it."""
    row = exception_log.get(conn, exception_id)
    if row is None:
        raise UnknownExceptionError(f"no exception {exception_id}")
    shown = texts(row, can_read_pii)
    shown["payload"] = payload(conn, row, can_read_pii)
    return shown


def texts(row: dict[str, Any], can_read_pii: bool) -> dict[str, Any]:
    """`row` (an exception, or an action with a `reason`) with its free texts as this
    reader may see them."""
    if can_read_pii:
        return row
    shown = dict(row)
    for name in (*TEXT_FIELDS, "reason", "decision_note"):
        if isinstance(shown.get(name), str):
            shown[name] = redact_text(shown[name])
    return shown


def payload(conn: Connection, row: dict[str, Any], can_read_pii: bool) -> Any:
    """The payload the exception is about, as this reader may see it (None: it names none)."""
    data = _event_payload(conn, row["event_id"]) if row.get("event_id") else None
    if data is None and row.get("raw_event_id"):
        data = _raw_payload(conn, int(row["raw_event_id"]), can_read_pii)
    if data is None or can_read_pii:
        return data
    return redact(data)


def _event_payload(conn: Connection, event_id: str) -> Any:
    try:
        envelope = event_log.get(conn, event_id)
    except DomainError:  # an event no longer readable: the raw body may still be shown
        return None
    return None if envelope is None else codec.encode_event(envelope.event)


def _raw_payload(conn: Connection, raw_id: int, can_read_pii: bool) -> Any:
    raw = raw_log.get(conn, raw_id)
    if raw is None:
        return None
    body = raw.body[:BODY_VIEW_MAX_BYTES]
    try:
        return _encodable(json.loads(body))
    except (ValueError, RecursionError):
        pass
    if not can_read_pii:
        return {"not_json": f"{len(raw.body):,} bytes, shown only with pii:read"}
    return body.decode("utf-8", "replace")


def _encodable(data: Any) -> Any:
    """`data` (parsed JSON) that UTF-8 can carry: lone surrogates become U+FFFD. Walked
    without recursion, as deep as the parser went."""
    try:
        json.dumps(data, ensure_ascii=False).encode()
        return data
    except UnicodeEncodeError:
        pass
    root: list[Any] = [data]
    stack: list[tuple[list[Any] | dict[str, Any], Any]] = [(root, 0)]
    while stack:
        parent, key = stack.pop()
        value = parent[key]
        if isinstance(value, str):
            parent[key] = _text(value)
        elif isinstance(value, list):
            stack.extend((value, i) for i in range(len(value)))
        elif isinstance(value, dict):
            items = {_text(k): v for k, v in value.items()}
            parent[key] = items
            stack.extend((items, k) for k in items)
    return root[0]


def _text(value: str) -> str:
    return _SURROGATE.sub("\ufffd", value)
