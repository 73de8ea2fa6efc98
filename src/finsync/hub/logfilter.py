"""Log records without secrets or personal data.

Rules:
- Every record of a `finsync` logger is redacted when it is made: its message (formatted
  with its arguments first, so a secret passed as an argument is caught too), its
  exception text (cached on the record: formatters use it rather than format the exception
  again) and its stack text go through `domain.sensitive.redact_text` (credentials and
  e-mail addresses masked). The arguments are then dropped, so no handler (a file, the
  console, pytest's capture, a log shipper) can format the original again.
- A `logging.Filter` on the `finsync` logger sees only records logged on that logger, never
  those of its children (`finsync.hub.intake` …) that propagate through it; so `install`
  puts the filter on the logger and also wraps the log-record factory, for records whose
  logger is `finsync` or below it. Records of other libraries are left as they are.
- `install` is idempotent: the CLI and the app both call it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from finsync.domain.sensitive import redact_text

ROOT = "finsync"
_lock = threading.Lock()
_installed: list[bool] = []


class RedactingFilter(logging.Filter):
    """Masks the message, exception and stack text of every record it sees; drops none."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


def redact_record(record: logging.LogRecord) -> None:
    if getattr(record, "finsync_redacted", False):
        return
    try:
        message = record.getMessage()
    except (TypeError, ValueError):  # arguments that do not fit: logging would say so later
        message = f"{record.msg} {record.args!r}"
    record.msg = redact_text(message)
    record.args = None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        # Formatters use this cached text instead of formatting `exc_info` again.
        record.exc_text = redact_text(record.exc_text)
    if record.stack_info:
        record.stack_info = redact_text(record.stack_info)
    record.finsync_redacted = True


def _ours(name: str) -> bool:
    return name == ROOT or name.startswith(ROOT + ".")


def install() -> None:
    """Redact every `finsync` log record from now on (see the module's rules)."""
    with _lock:
        if _installed:
            return
        logging.getLogger(ROOT).addFilter(RedactingFilter())
        make = logging.getLogRecordFactory()

        def redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = make(*args, **kwargs)
            if _ours(record.name):
                redact_record(record)
            return record

        logging.setLogRecordFactory(redacting_factory)
        _installed.append(True)
