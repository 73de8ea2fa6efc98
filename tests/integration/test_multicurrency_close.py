"""One legal entity billing in three currencies closes its months (issue 15, found 8).

le_us (functional currency USD) signs three annual seat contracts over 2026, in USD, EUR
and JPY, each invoiced in full on 1 January. The revenue engine answers one journal per
currency, the ERP posts each (translating EUR and JPY at its rates), and the period closes;
closing it again posts nothing twice. Before, the one journal of the entity mixed the three
currencies: the ERP refused it as `currency_mismatch` and the hub could not record the money
at stake of the refusal.

Hand-worked figures, each contract 10 seats a year, January 31 of 365 days, February 28
(recognised cumulatively: round(price x 59/365) - January's):
- USD 10 x 120.00 = 1,200.00: January 1,200.00 x 31/365 = 101.917.. -> 101.92; to February
  193.972.. -> 193.97, so February 92.05.
- EUR 10 x 110.00 = 1,100.00: January 93.424.. -> 93.42; to February 177.808.. -> 177.81,
  so February 84.39.
- JPY 10 x 18,000 = 180,000: January 15,287.67.. -> 15,288; to February 29,095.89.. ->
  29,096, so February 13,808.
"""

from __future__ import annotations

import tomllib
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from finsync.bootstrap import Finance, approved_config, build_finance, build_ledger_service
from finsync.config import DEFAULT_CONFIG, parse_config
from finsync.demo.clock import SimClock
from finsync.domain.clock import month_period
from finsync.domain.journal import JournalEntry, Side
from finsync.domain.money import Money, per_currency
from finsync.storage.db import make_engine
from finsync.storage.raw_log import RawIn
from finsync.systems.revrec.journal import journal_id
from tests.currencykit import booked, contract

PRICES = (("USD", "120.00"), ("EUR", "110.00"), ("JPY", "18000"))
REVENUE = {"2026-01": {"USD": "101.92", "EUR": "93.42", "JPY": "15288"},
           "2026-02": {"USD": "92.05", "EUR": "84.39", "JPY": "13808"}}


@pytest.fixture
def finance(db_url: str, tmp_path: Path) -> Any:
    data = tomllib.loads(DEFAULT_CONFIG.read_text())
    data["pumps"] = {}
    data["ledger"]["rates"].append({"base": "JPY", "quote": "USD",
                                    "effective": date(2026, 1, 1), "rate": "0.0067"})
    config = parse_config(data, tmp_path)
    clock = SimClock(datetime(2026, 1, 1, tzinfo=UTC))
    engine = make_engine(db_url)
    built = build_finance(config, engine=engine, clock=clock)
    approved_config(config, engine, clock)
    built.hub.intake.store([RawIn("billing", b, {}) for currency, price in PRICES
                            for b in booked(contract(currency, price))])
    built.hub.run_until_idle()
    try:
        yield built, config
    finally:
        engine.dispose()


def revenue_credited(entry: JournalEntry) -> Money:
    (credited,) = per_currency(line.amount if line.side is Side.CREDIT else -line.amount
                               for line in entry.lines if line.account == "4000")
    return credited


def test_an_entity_billing_in_three_currencies_closes_its_months(finance: Any) -> None:
    found, config = finance
    assert isinstance(found, Finance)
    assert found.triage.listing() == []
    for month, revenue in REVENUE.items():
        result = found.close.close("le_us", month, "controller")
        assert result.status == "closed"
        period = month_period(month)
        # one journal per currency, in currency order, each id from (entity, period, currency)
        assert [j.id for j in result.journals] == [
            journal_id("le_us", period, c) for c in ("EUR", "JPY", "USD")]
        for entry in result.journals:
            debits = per_currency(ln.amount for ln in entry.lines if ln.side is Side.DEBIT)
            credits = per_currency(ln.amount for ln in entry.lines if ln.side is Side.CREDIT)
            assert len(debits) == 1 and debits == credits  # balanced, in its one currency
        assert {revenue_credited(j).currency: str(revenue_credited(j).amount)
                for j in result.journals} == revenue
    assert found.triage.listing() == []  # nothing refused, nothing at stake
    again = found.close.close("le_us", "2026-01", "controller")
    assert again.status == "already_closed"
    ledger = build_ledger_service(config, found.hub.engine)
    posted = [e for e in ledger.entries("le_us") if "Revenue recognition" in e.memo]
    assert len(posted) == 6  # 3 currencies x 2 months, none twice
    foreign = sorted({ln.transaction_amount.currency for e in posted for ln in e.lines
                      if ln.transaction_amount is not None})
    assert foreign == ["EUR", "JPY"]  # translated into USD by the ERP, the original kept
    balances = ledger.trial_balance("le_us", date(2026, 2, 28))
    assert sum((b.balance.amount for b in balances), Decimal(0)) == 0
