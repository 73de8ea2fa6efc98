"""Commercial contracts for the quote-to-cash tests, in CPQ's words."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

from finsync.domain.catalog import BillingFrequency
from finsync.domain.commercial import (
    CommercialContract,
    CommercialKind,
    CommercialLine,
    ProrationTerms,
)
from finsync.domain.money import Money

TERM_START = date(2026, 1, 1)
TERM_END = date(2027, 1, 1)


def line(line_id: str, code: str, quantity: int, price: str, *, currency: str = "USD",
         start: date = TERM_START, end: date = TERM_END) -> CommercialLine:
    unit = Money.of(price, currency)
    return CommercialLine(line_id, code, quantity, unit, Decimal(0), unit, start, end)


def seats(quantity: int, price: str = "120.00", **kw: object) -> CommercialLine:
    return line("L-seats", "SEATS-ANNUAL", quantity, price, **kw)  # type: ignore[arg-type]


def analytics(price: str = "24000.00", **kw: object) -> CommercialLine:
    return line("L-analytics", "PREMIUM-ANALYTICS", 1, price, **kw)  # type: ignore[arg-type]


def contract(version: int, *lines: CommercialLine, contract_id: str = "CPQ-C1",
             kind: CommercialKind | None = None, uplift: str = "0",
             effective: date = TERM_START, start: date = TERM_START,
             end: date = TERM_END, currency: str = "USD") -> CommercialContract:
    """Version `version` of `contract_id`, quote `Q-<id>-<version>`."""
    chosen = kind or (CommercialKind.NEW if version == 1 else CommercialKind.AMENDMENT)
    return CommercialContract(
        id=contract_id, version=version, kind=chosen, quote_id=f"Q-{contract_id}-{version}",
        sold_to_id="cus_acme", bill_to_id="cus_acme", legal_entity="le_us",
        currency=currency, start_date=start, end_date=end, effective_date=effective,
        billing_frequency=BillingFrequency.ANNUAL, lines=lines,
        proration=ProrationTerms.INVOICE_NOW, renewal_uplift_percent=Decimal(uplift))


def renewed(base: CommercialContract, version: int, *lines: CommercialLine) -> CommercialContract:
    """The renewal of `base` for the next year."""
    return replace(base, version=version, kind=CommercialKind.RENEWAL,
                   quote_id=f"Q-{base.id}-{version}", start_date=TERM_END,
                   end_date=date(2028, 1, 1), effective_date=TERM_END, lines=lines)
