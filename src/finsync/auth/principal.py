"""Principals and scopes.

Rules:
- A principal id is normalised once, where it enters (`normalise`): Unicode NFKC, trimmed,
  case-folded. Segregation of duties compares normalised ids, so `ar.clerk` and `AR.CLERK`
  are one person.
- A scope is granted only if held exactly, except `events:write:*`, which holds
  `events:write:<source>` for every source. `admin` manages tokens and configuration; it
  does not imply the other scopes (an administrator who approves corrections holds
  `exceptions:approve` as well, on purpose).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from finsync.domain.errors import DomainError

EVENTS_WRITE = "events:write"
FINANCE_READ = "finance:read"
EXCEPTIONS_ACT = "exceptions:act"
EXCEPTIONS_APPROVE = "exceptions:approve"
PERIODS_MANAGE = "periods:manage"
ADMIN = "admin"
PII_READ = "pii:read"
AUDIT_READ = "audit:read"

FIXED_SCOPES = frozenset({FINANCE_READ, EXCEPTIONS_ACT, EXCEPTIONS_APPROVE, PERIODS_MANAGE,
                          ADMIN, PII_READ, AUDIT_READ})
ANY_SOURCE = "*"
_ID = re.compile(r"[a-z0-9][a-z0-9._@+-]{0,127}")
_SOURCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class PrincipalError(DomainError):
    code = "invalid_principal"


class ScopeError(DomainError):
    code = "invalid_scope"


def normalise(principal_id: str) -> str:
    """The one spelling of a principal id; refuses what cannot name a person or system."""
    folded = unicodedata.normalize("NFKC", principal_id).strip().casefold()
    if not _ID.fullmatch(folded):
        raise PrincipalError(f"{principal_id[:64]!r} is not a principal id: 1-128 of a-z, 0-9, "
                             "'.', '_', '@', '+', '-', starting with a letter or digit")
    return folded


def events_write(source: str) -> str:
    """The scope that lets a token post events as `source`."""
    return f"{EVENTS_WRITE}:{source}"


def check_scope(scope: str) -> str:
    """`scope` if it is one finsync knows, else `ScopeError`."""
    if scope in FIXED_SCOPES:
        return scope
    prefix, _, source = scope.rpartition(":")
    if prefix == EVENTS_WRITE and (source == ANY_SOURCE or _SOURCE.fullmatch(source)):
        return scope
    raise ScopeError(f"unknown scope {scope[:64]!r}; known: {', '.join(sorted(FIXED_SCOPES))}, "
                     f"{EVENTS_WRITE}:<source>, {EVENTS_WRITE}:{ANY_SOURCE}")


def grants(held: Iterable[str], needed: str) -> bool:
    held = set(held)
    if needed in held:
        return True
    return needed.startswith(f"{EVENTS_WRITE}:") and events_write(ANY_SOURCE) in held


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated person or system: a normalised id and the scopes it holds now."""

    id: str
    scopes: frozenset[str]

    @classmethod
    def of(cls, principal_id: str, scopes: Iterable[str]) -> Principal:
        return cls(normalise(principal_id), frozenset(check_scope(s) for s in scopes))

    def can(self, scope: str) -> bool:
        return grants(self.scopes, scope)

    def same_person(self, other_id: str) -> bool:
        return self.id == normalise(other_id)
