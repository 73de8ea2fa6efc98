"""Filing periods and the liability arithmetic, pure."""

from __future__ import annotations

from datetime import date

import pytest

from finsync.domain.errors import DomainError
from finsync.domain.money import Money
from finsync.domain.tax import TaxDocumentKind, TaxTreatment
from finsync.systems.tax.liability import CommittedDetail, filing_period, liability


@pytest.mark.parametrize(("name", "start", "end"), [
    ("2026-03", date(2026, 3, 1), date(2026, 4, 1)),
    ("2026-Q1", date(2026, 1, 1), date(2026, 4, 1)),
    ("2026-Q4", date(2026, 10, 1), date(2027, 1, 1)),
    ("2026", date(2026, 1, 1), date(2027, 1, 1)),
])
def test_filing_periods(name: str, start: date, end: date) -> None:
    assert (filing_period(name).start, filing_period(name).end) == (start, end)


@pytest.mark.parametrize("name", ["2026-Q5", "2026-13", "9999", "9999-Q4", "26", "x"])
def test_a_period_that_is_none_is_refused(name: str) -> None:
    with pytest.raises(DomainError):
        filing_period(name)


def test_liability_nets_credit_memos_per_treatment_and_currency() -> None:
    def detail(kind: TaxDocumentKind, where: str, treatment: TaxTreatment, base: str,
               tax: str, currency: str = "EUR") -> CommittedDetail:
        return CommittedDetail(kind, where, treatment, Money.of(base, currency),
                               Money.of(tax, currency))

    invoice, memo = TaxDocumentKind.INVOICE, TaxDocumentKind.CREDIT_MEMO
    rows = liability([
        detail(invoice, "FR", TaxTreatment.REVERSE_CHARGE, "1000.00", "0.00"),
        detail(invoice, "DE", TaxTreatment.TAXABLE, "200.00", "38.00"),
        detail(memo, "DE", TaxTreatment.TAXABLE, "50.00", "9.50"),
        detail(invoice, "DE", TaxTreatment.TAXABLE, "100.00", "19.00", "USD"),
    ])
    assert [(r.jurisdiction, r.currency) for r in rows] == [("DE", "EUR"), ("DE", "USD"),
                                                          ("FR", "EUR")]
    de = rows[0]
    # 200.00 - 50.00 = 150.00 of sales; 38.00 charged - 9.50 credited = 28.50 due
    assert (de.taxable_sales, de.tax_charged, de.tax_credited, de.net_tax_due) == (
        Money.of("150.00", "EUR"), Money.of("38.00", "EUR"), Money.of("9.50", "EUR"),
        Money.of("28.50", "EUR"))
    assert rows[2].reverse_charge_sales == Money.of("1000.00", "EUR")
    assert rows[2].as_json()["net_tax_due"] == "0.00"
