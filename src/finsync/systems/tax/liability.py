"""The tax liability report: what the engine's committed documents owe, per jurisdiction.

Rules:
- Read from committed transactions only, by issue date; a voided invoice and every credit
  memo of it (the void memo included) are left out: for tax, that invoice never was.
- Per jurisdiction and currency: sales by treatment (taxable, exempt, not taxable,
  reverse charge) net of credit memos; tax charged (invoices), tax credited (credit memos)
  and the net tax due = charged - credited.
- Rows ordered by jurisdiction, then currency.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from finsync.domain.money import Money
from finsync.domain.tax import TaxDocumentKind, TaxTreatment


@dataclass(frozen=True, slots=True)
class CommittedDetail:
    """One jurisdiction line of a committed document."""

    kind: TaxDocumentKind
    jurisdiction: str
    treatment: TaxTreatment
    taxable: Money
    amount: Money


@dataclass(frozen=True, slots=True)
class LiabilityRow:
    jurisdiction: str
    currency: str
    taxable_sales: Money
    exempt_sales: Money
    not_taxable_sales: Money
    reverse_charge_sales: Money
    tax_charged: Money
    tax_credited: Money

    @property
    def net_tax_due(self) -> Money:
        return self.tax_charged - self.tax_credited


def _empty(jurisdiction: str, currency: str) -> dict[str, Money]:
    zero = Money.zero(currency)
    return {"taxable": zero, "exempt": zero, "not_taxable": zero, "reverse_charge": zero,
            "charged": zero, "credited": zero}


def liability(details: Iterable[CommittedDetail]) -> tuple[LiabilityRow, ...]:
    sums: dict[tuple[str, str], dict[str, Money]] = {}
    for detail in details:
        currency = detail.taxable.currency
        row = sums.setdefault((detail.jurisdiction, currency),
                              _empty(detail.jurisdiction, currency))
        memo = detail.kind is TaxDocumentKind.CREDIT_MEMO
        row[detail.treatment.value] += -detail.taxable if memo else detail.taxable
        if memo:
            row["credited"] += detail.amount
        else:
            row["charged"] += detail.amount
    return tuple(LiabilityRow(j, c, s["taxable"], s["exempt"], s["not_taxable"],
                              s["reverse_charge"], s["charged"], s["credited"])
                 for (j, c), s in sorted(sums.items()))
