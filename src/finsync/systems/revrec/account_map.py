"""The GL accounts of the revenue journals, per legal entity.

Rules:
- One default map (`revenue`, `deferred_revenue`, `contract_asset`, `unbilled_receivable`,
  and optionally `contra_revenue`, `refund_liability`: `journal.AccountMap`) and, per legal
  entity, the roles whose account differs there; an entity without overrides uses the
  default.
- An override names only known roles and is checked when the maps are built (a typo in a
  configuration is refused at start-up, not at the first close).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from finsync.systems.revrec.journal import AccountMap


@dataclass(frozen=True, slots=True)
class AccountMaps:
    default: AccountMap
    entities: tuple[tuple[str, AccountMap], ...] = ()

    @classmethod
    def of(cls, default: Mapping[str, str],
           overrides: Mapping[str, Mapping[str, str]]) -> AccountMaps:
        base = AccountMap.of(default)
        return cls(base, tuple((entity, AccountMap.of({**base.as_dict(), **codes}))
                               for entity, codes in sorted(overrides.items())))

    def of_entity(self, legal_entity: str) -> AccountMap:
        return next((m for e, m in self.entities if e == legal_entity), self.default)
