"""The rate-table tax engine: per-line half-even rounding, never a silent zero."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest

from finsync.domain.errors import ExceptionClass
from finsync.domain.money import Money
from finsync.systems.billing.errors import TaxJurisdictionError
from finsync.systems.billing.subscription import CreateSubscription, create_subscription
from finsync.systems.billing.tax import RateTableTaxEngine, TaxableLine, TaxRate
from tests.unit.billing.support import CUSTOMER, contract, empty_state

ENGINE = RateTableTaxEngine((
    TaxRate("DE", "saas", Decimal("0.16"), date(2020, 7, 1)),
    TaxRate("DE", "saas", Decimal("0.19"), date(2021, 1, 1)),
    TaxRate("US", "exempt", Decimal("0")),
))


def test_rate_table_rounds_each_line_half_even() -> None:
    # 0.19 x 10.50 = 1.995 -> 2.00; 0.19 x 0.50 = 0.095 -> 0.10 (half-even, to even cent)
    lines = [TaxableLine("1", "saas", Money.of("10.50", "EUR")),
             TaxableLine("2", "saas", Money.of("0.50", "EUR"))]
    taxes = ENGINE.tax("DE", date(2025, 1, 1), lines)
    assert taxes == (Money.of("2.00", "EUR"), Money.of("0.10", "EUR"))


def test_rate_in_effect_on_the_issue_date_applies() -> None:
    line = [TaxableLine("1", "saas", Money.of("100.00", "EUR"))]
    assert ENGINE.tax("DE", date(2020, 12, 31), line) == (Money.of("16.00", "EUR"),)
    assert ENGINE.tax("US", date(2025, 1, 1),
                      [TaxableLine("1", "exempt", Money.of("5.00", "USD"))]) == (
        Money.of("0.00", "USD"),)


def test_unknown_jurisdiction_is_a_tax_failure_never_zero() -> None:
    with pytest.raises(TaxJurisdictionError, match="'FR'") as raised:
        ENGINE.tax("FR", date(2025, 1, 1), [TaxableLine("1", "saas", Money.of("1", "EUR"))])
    assert raised.value.exception_class is ExceptionClass.TAX_FAILURE


def test_invoice_for_a_customer_in_an_unknown_jurisdiction_is_not_issued() -> None:
    state = empty_state()
    state = replace(state, customers=(replace(CUSTOMER, billing_country="BR"),))
    with pytest.raises(TaxJurisdictionError):
        create_subscription(state, CreateSubscription(contract()))
    assert state.subscriptions == () and state.invoices == ()
