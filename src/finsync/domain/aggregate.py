"""Aggregate references: what an event changes, and which version of it.

Rule: `version` orders the events of one aggregate; `None` means the aggregate is not
versioned (a document issued once), and the envelope carries version 1 for it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AggregateRef:
    type: str
    id: str
    version: int | None = None
