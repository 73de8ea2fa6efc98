"""External references: the id a canonical object has in each system (`{system: id}`).

Rule: a reference, once known, never changes; a different id for the same system is a
master-data mismatch, not an update.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from finsync.domain.errors import DomainError


class ReferenceConflictError(DomainError):
    code = "reference_conflict"


@dataclass(frozen=True, slots=True)
class ExternalRefs(Mapping[str, str]):
    pairs: tuple[tuple[str, str], ...] = field(default=())

    @classmethod
    def of(cls, refs: Mapping[str, str] | None = None) -> ExternalRefs:
        return cls(tuple(sorted((refs or {}).items())))

    def __getitem__(self, system: str) -> str:
        return dict(self.pairs)[system]

    def __iter__(self) -> Iterator[str]:
        return (system for system, _ in self.pairs)

    def __len__(self) -> int:
        return len(self.pairs)
