"""Secrets: what one looks like in text, a value that never prints itself, and rotation.

Rules:
- A secret never appears in a log line, an error message, a stored row or an export. Text
  that leaves finsync goes through `mask_secrets`, which replaces what looks like a
  credential: finsync API tokens (`fsk_…`), `Authorization` values (`Bearer …`, `Basic …`,
  Tryton's `Session …`), Stripe keys (`sk_`/`rk_` live or test) and webhook secrets
  (`whsec_…`), JSON web tokens, PEM private keys, and the password of a URL
  (`scheme://user:password@host`). The patterns find a secret by its shape, so a secret
  finsync never saw (a token of another service pasted in a note) is masked too.
- `Secret` holds a value read from the environment or a secret file; its `repr` and `str`
  never show the value (a traceback or an f-string prints `Secret(***)`), `reveal()` does.
- A rotating secret (a webhook's) is valid until its `not_after` (None: until removed); while
  an old and a new secret are both valid, a request signed with either is accepted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

MASK = "[redacted]"

# Order matters: a private key block first (its body would otherwise be cut into pieces),
# then the `Authorization` schemes (their value can be any shape), then the shapes of
# known tokens.
_PATTERNS = (
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)",
               re.DOTALL),
    re.compile(r"(?i)\b(bearer)(\s+)[A-Za-z0-9._~+/=:-]{6,}"),
    # Basic and Tryton's Session carry base64; a word after "session" in prose is not one.
    re.compile(r"(?i)\b(basic|session)(\s+)[A-Za-z0-9+/]{16,}={0,2}"),
    re.compile(r"\bfsk_[A-Za-z0-9_-]{6,}"),
    re.compile(r"\b(sk|rk)_(live|test)_[A-Za-z0-9]{6,}"),
    re.compile(r"\bwhsec_[A-Za-z0-9+/=_-]{6,}"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),
)
_SCHEMES = (_PATTERNS[1], _PATTERNS[2])
# scheme://user:password@host: the password goes, the rest stays readable.
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@]*):([^\s@/]+)@")


def _masked(match: re.Match[str]) -> str:
    if match.re in _SCHEMES:
        return f"{match.group(1)}{match.group(2)}{MASK}"
    return MASK


# What every pattern above needs somewhere in the text: most texts (a header value, a log
# line) hold none of it, and one search is cheaper than all the patterns.
_TRIGGER = re.compile(r"(?i)bearer|basic|session|fsk_|[sr]k_|whsec_|eyJ|-----BEGIN|://")


def mask_secrets(text: str) -> str:
    """`text` with everything that looks like a credential replaced by `[redacted]`."""
    if not _TRIGGER.search(text):
        return text
    for pattern in _PATTERNS:
        text = pattern.sub(_masked, text)
    return _URL_PASSWORD.sub(lambda m: f"{m.group(1)}:{MASK}@", text)


def looks_secret(text: str) -> bool:
    """Whether `text` holds something `mask_secrets` would mask."""
    return mask_secrets(text) != text


@dataclass(frozen=True, slots=True)
class Secret:
    """A secret value that never prints itself."""

    value: str = field(repr=False)

    def __post_init__(self) -> None:
        if not self.value:
            raise ValueError("a secret cannot be empty")

    def reveal(self) -> str:
        return self.value

    def __str__(self) -> str:
        return "Secret(***)"

    def __repr__(self) -> str:
        return "Secret(***)"


@dataclass(frozen=True, slots=True)
class RotatingSecret:
    """One of several secrets of an endpoint, valid until `not_after` (exclusive)."""

    secret: Secret
    not_after: datetime | None = None

    def __post_init__(self) -> None:
        if self.not_after is not None and self.not_after.utcoffset() is None:
            raise ValueError("not_after must be timezone-aware")

    def valid_at(self, now: datetime) -> bool:
        return self.not_after is None or now < self.not_after


def valid_at(secrets: Iterable[RotatingSecret], now: datetime) -> list[str]:
    """The values of the secrets valid at `now`, in the order given."""
    return [s.secret.reveal() for s in secrets if s.valid_at(now)]
