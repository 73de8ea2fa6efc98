"""The tax liability report: what the engine's committed documents owe, per jurisdiction.

Rules:
- Read from the committed transactions by issue date, voided ones included: a void credits
  the invoice's tax in the void memo's own period (as the ledger books it), so a period
  already filed is never rewritten by a later void.
- Per jurisdiction and currency: sales by treatment (taxable, exempt, not taxable,
  reverse charge) net of credit memos; tax charged (invoices), tax credited (credit memos)
  and the net tax due = charged - credited.
- Rows ordered by jurisdiction, then currency.
- A period is a filing period: a month `YYYY-MM`, a quarter `YYYY-Qn` or a year `YYYY`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from finsync.domain.clock import Period, month_period
from finsync.domain.errors import DomainError
from finsync.domain.money import Money
from finsync.domain.tax import TaxDocumentKind, TaxTreatment

_QUARTER = re.compile(r"(\d{4})-Q([1-4])")
_YEAR = re.compile(r"\d{4}")
PERIOD_PATTERN = r"^\d{4}(-(0[1-9]|1[0-2]|Q[1-4]))?$"  # what `filing_period` reads


def filing_period(name: str) -> Period:
    """`YYYY-MM`, `YYYY-Qn` or `YYYY` as the half-open span of its days (years 1 to 9998)."""
    quarter = _QUARTER.fullmatch(name)
    try:
        if quarter:
            year, number = int(quarter[1]), int(quarter[2])
            return Period(date(year, 3 * number - 2, 1),
                          date(year + number // 4, (3 * number) % 12 + 1, 1))
        if _YEAR.fullmatch(name):
            return Period(date(int(name), 1, 1), date(int(name) + 1, 1, 1))
    except ValueError:
        raise DomainError(f"period {name!r} is outside the years a date can hold") from None
    try:
        return month_period(name)
    except DomainError:
        raise DomainError(f"a filing period is a month YYYY-MM, a quarter YYYY-Qn or a year "
                          f"YYYY, not {name!r}") from None


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

    def as_json(self) -> dict[str, str]:
        """Amounts as decimal strings, in the row's currency (the CLI's and the API's)."""
        amounts = {"taxable_sales": self.taxable_sales, "exempt_sales": self.exempt_sales,
                   "not_taxable_sales": self.not_taxable_sales,
                   "reverse_charge_sales": self.reverse_charge_sales,
                   "tax_charged": self.tax_charged, "tax_credited": self.tax_credited,
                   "net_tax_due": self.net_tax_due}
        return {"jurisdiction": self.jurisdiction, "currency": self.currency,
                **{name: str(money.amount) for name, money in amounts.items()}}


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
