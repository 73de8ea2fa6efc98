"""Text as every database the hub runs on stores it.

Rule: PostgreSQL refuses NUL in text, and no UTF-8 column holds a lone surrogate (a JSON
escape such as `\\ud800` can spell one). Messages and details that quote what a sender sent
are made storable here: NUL as `\\x00`, a lone surrogate as its `\\udXXX` escape.

Rule: an error text that finance reads (an exception's summary and detail, a refusal's or a
delivery's error) is stored through `error_text`: credentials and e-mail addresses masked
(`domain.sensitive.redact_text`), whatever code wrote the message.
"""

from __future__ import annotations

from finsync.domain.sensitive import redact_text


def storable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def storable_or_none(text: str | None) -> str | None:
    return None if text is None else storable(text)


def error_text(text: str | None) -> str | None:
    """An error text as it is stored: storable, without credentials or e-mail addresses."""
    return None if text is None else storable(redact_text(text))
