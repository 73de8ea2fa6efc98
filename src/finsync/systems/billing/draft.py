"""Invoice drafts: the lines billing is about to invoice, and a draft held back.

Rules:
- A draft line is already rounded: every line amount is rounded exactly once (half-even,
  minor units) where it is priced, and is never negative (a reduction is a credit memo).
  `tax_inclusive`: its amount is what the customer pays, tax included (the tax engine
  splits it into net and tax).
- A held draft is an invoice billing could not issue because its tax could not be
  computed: its lines, the contract version it bills, the change it belongs to, and the
  latest version of its `HeldInvoice` document (unnumbered; `invoice_id` once released).
- A held draft's id derives from what it bills (contract, issue date, change and its
  lines' contract lines, service periods and amounts): the same draft is the same id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from finsync.domain.aggregate import AggregateRef
from finsync.domain.clock import Period
from finsync.domain.contract import SubscriptionContract
from finsync.domain.ids import derive_id
from finsync.domain.invoice import HeldInvoice
from finsync.domain.money import Money


@dataclass(frozen=True, slots=True)
class DraftLine:
    source_line_id: str
    product_id: str
    description: str
    quantity: int
    amount: Money
    service: Period
    proration: bool = False
    tax_inclusive: bool = False

    def __post_init__(self) -> None:
        assert self.amount.amount >= 0, "invoice lines are never negative: credit instead"
        assert self.amount.quantize() == self.amount, "draft lines are rounded when priced"


@dataclass(frozen=True, slots=True)
class HeldDraft:
    held: HeldInvoice
    contract: SubscriptionContract
    lines: tuple[DraftLine, ...]
    correlation_id: str
    causation: AggregateRef | None = None

    @property
    def id(self) -> str:
        return self.held.id

    @property
    def released(self) -> bool:
        return self.held.invoice_id is not None


def held_draft_id(contract: SubscriptionContract, issue_date: date, correlation_id: str,
                  lines: Sequence[DraftLine]) -> str:
    parts = [f"{d.source_line_id}/{d.service.start}/{d.service.end}/{d.amount.amount}"
             for d in lines]
    return derive_id("hinv", contract.id, str(contract.version), issue_date.isoformat(),
                     correlation_id, *parts)
