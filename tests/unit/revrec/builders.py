"""Small builders for revenue-engine tests, in the domain's own words."""

from __future__ import annotations

from datetime import date

from finsync.domain.catalog import BillingFrequency, StandaloneSellingPrice
from finsync.domain.contract import ContractAmendment, ContractLine, SubscriptionContract
from finsync.domain.money import Money
from finsync.systems.revrec import (
    ContractBooked,
    ContractModified,
    Granularity,
    ModificationFacts,
    RecognitionPattern,
    RecognitionTerms,
)

START, END = date(2026, 1, 1), date(2027, 1, 1)


def usd(amount: str | int) -> Money:
    return Money.of(amount, "USD")


def line(line_id: str, quantity: int, price: str, product: str | None = None,
         start: date = START, end: date = END) -> ContractLine:
    return ContractLine(line_id, product or f"prod_{line_id}", "price", quantity, usd(price),
                        start, end)


def contract(*lines: ContractLine, version: int = 1) -> SubscriptionContract:
    return SubscriptionContract("con_t", "cus_t", "le_us", "USD", START, END,
                                BillingFrequency.ANNUAL, lines, version)


def ssp(product: str, amount: str) -> StandaloneSellingPrice:
    return StandaloneSellingPrice(product, usd(amount), date(2000, 1, 1))


def booked(*lines: ContractLine, ssps: tuple[StandaloneSellingPrice, ...] = (),
           patterns: dict[str, RecognitionPattern] | None = None,
           granularity: Granularity = Granularity.DAY) -> ContractBooked:
    prices = ssps or tuple(ssp(li.product_id, str(li.unit_price.amount)) for li in lines)
    recognition = RecognitionTerms(tuple((patterns or {}).items()), granularity)
    return ContractBooked("evt_book", contract(*lines), prices, recognition)


def modified(event_id: str, on: date, *lines: ContractLine, version: int = 2,
             facts: ModificationFacts | None = None,
             ssps: tuple[StandaloneSellingPrice, ...] = ()) -> ContractModified:
    new = contract(*lines, version=version)
    prices = ssps or tuple(ssp(li.product_id, str(li.unit_price.amount)) for li in lines)
    amendment = ContractAmendment(f"amd_{event_id}", new.id, version, on, "test", (), new)
    return ContractModified(event_id, amendment, facts or ModificationFacts(), prices)
