"""Customer accounts."""

from __future__ import annotations

from dataclasses import dataclass, field

from finsync.domain.money import exponent
from finsync.domain.refs import ExternalRefs


@dataclass(frozen=True, slots=True)
class CustomerAccount:
    id: str
    name: str
    legal_entity: str
    currency: str
    billing_country: str
    version: int = 1
    refs: ExternalRefs = field(default_factory=ExternalRefs)

    def __post_init__(self) -> None:
        exponent(self.currency)
