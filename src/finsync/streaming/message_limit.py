"""What one JetStream message may hold, checked before it is sent.

Rules:
- A NATS server refuses a message whose headers and data together exceed its
  `max_payload` by closing the connection: every message in flight on it fails, and the
  sender's retry would do it again. So nothing over `MESSAGE_MAX_BYTES` (NATS's default
  `max_payload`, 1 MiB) is ever sent: it is refused here, alone, and says which limit.
- The size is counted as NATS writes it: the header block (`NATS/1.0`, one `name: value`
  line per header, the message id among them, a blank line) plus the data.
- An intake node answers a request whose message would be over the limit 413
  `body_too_large` (its source's `body_max_bytes` is above what the transport carries).
"""

from __future__ import annotations

from collections.abc import Mapping

from finsync.domain.errors import DomainError
from finsync.hub.intake import BodyTooLargeError

MESSAGE_MAX_BYTES = 1 << 20  # NATS's default max_payload
_HEADER_LINE = len(b"NATS/1.0\r\n")
_HEADERS_END = len(b"\r\n")
_MSG_ID = "Nats-Msg-Id"


class MessageTooLargeError(BodyTooLargeError):
    """A message over what the transport carries (`MESSAGE_MAX_BYTES`)."""

    def __init__(self, limit: int, size: int) -> None:
        DomainError.__init__(
            self, f"a message of {size:,} bytes (the body and its headers) exceeds the "
                  f"transport's limit of {limit:,} bytes (NATS max_payload); lower the "
                  f"source's body_max_bytes below it")
        self.limit, self.size = limit, size


def message_size(data: bytes, headers: Mapping[str, str], msg_id: str | None) -> int:
    """The bytes NATS counts against `max_payload` for this message."""
    lines = dict(headers)
    if msg_id is not None:
        lines[_MSG_ID] = msg_id
    if not lines:
        return len(data)
    block = sum(len(f"{name}: {value}\r\n".encode()) for name, value in lines.items())
    return _HEADER_LINE + block + _HEADERS_END + len(data)


def check_size(data: bytes, headers: Mapping[str, str], msg_id: str | None,
               limit: int = MESSAGE_MAX_BYTES) -> None:
    """`MessageTooLargeError` when the message would be over `limit`."""
    size = message_size(data, headers, msg_id)
    if size > limit:
        raise MessageTooLargeError(limit, size)
