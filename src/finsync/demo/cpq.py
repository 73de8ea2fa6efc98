"""The reference workflow as CPQ approved it: the customer and versions 1..3 of its contract.

Rules:
- Version 1 is the original order (1 Jan): 500 platform seats a year at 120.00 and the
  usage overage line (API calls over the included volume, billed monthly in arrears: its
  quantity is 0, usage sets what is billed).
- Version 2 is the mid-quarter upgrade approved on 15 May: 500 -> 800 seats and the premium
  analytics module (one a year at 24,000.00), co-terminous with the contract (to 1 Jan 2027).
- Version 3 is the co-terminated add-on of 29 May: 800 -> 820 seats.
- Each version carries the whole contract (`domain.commercial`); its quote id is the
  correlation id of all it causes, so the demo's ids are the ones billing used before the
  order came from CPQ (`ord_acme_2026`, `amd_acme_0002`, `amd_acme_0003`).
- CPQ's product codes are the catalogue map's (`[cpq] catalog`, the shipped default).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

from finsync.domain.catalog import BillingFrequency
from finsync.domain.commercial import CommercialContract, CommercialKind, CommercialLine
from finsync.domain.money import Money
from finsync.domain.party import CustomerAccount
from finsync.domain.refs import ExternalRefs

YEAR = 2026
ENTITY = "le_us"
CUSTOMER = "cus_acme"
CONTRACT = "con_acme_2026"
ORDER = "ord_acme_2026"
UPGRADE = "amd_acme_0002"
ADD_ON = "amd_acme_0003"
UPGRADE_DAY = date(YEAR, 5, 15)
ADD_ON_DAY = date(YEAR, 5, 29)
START = date(YEAR, 1, 1)
END = date(YEAR + 1, 1, 1)
# CPQ's products (the shipped catalogue map turns each into billing's price).
SEATS = "SEATS-ANNUAL"
ANALYTICS = "PREMIUM-ANALYTICS"
OVERAGE = "USAGE-OVERAGE"
CRM = "crm"  # the system whose account id the customer's canonical id is
SOURCE = "cpq"  # the demo's generic CPQ source ([sources] cpq = "cpq")


def customer() -> CustomerAccount:
    return CustomerAccount(CUSTOMER, "Acme Analytics Customer Ltd", ENTITY, "USD", "US",
                           refs=ExternalRefs.of({CRM: CUSTOMER}))


def _line(line_id: str, product: str, quantity: int, price: str,
          start: date = START) -> CommercialLine:
    unit = Money.of(price, "USD")
    return CommercialLine(line_id, product, quantity, unit, Decimal(0), unit, start, END)


def original_order() -> CommercialContract:
    """Version 1: 500 seats a year, and the overage line."""
    return CommercialContract(
        CONTRACT, 1, CommercialKind.NEW, ORDER, CUSTOMER, CUSTOMER, ENTITY, "USD", START,
        END, START, BillingFrequency.ANNUAL,
        (_line("ln_seats", SEATS, 500, "120.00"), _line("ln_usage", OVERAGE, 0, "0.002")))


def upgrade() -> CommercialContract:
    """Version 2, 15 May: 800 seats and the premium analytics module."""
    v1 = original_order()
    seats, usage = v1.lines
    return replace(v1, version=2, kind=CommercialKind.AMENDMENT, quote_id=UPGRADE,
                   effective_date=UPGRADE_DAY,
                   lines=(replace(seats, quantity=800), usage,
                          _line("ln_analytics", ANALYTICS, 1, "24000.00", UPGRADE_DAY)))


def add_on() -> CommercialContract:
    """Version 3, 29 May: 20 more seats, co-terminated with the contract."""
    v2 = upgrade()
    seats, usage, analytics = v2.lines
    return replace(v2, version=3, quote_id=ADD_ON, effective_date=ADD_ON_DAY,
                   lines=(replace(seats, quantity=820), usage, analytics))


def versions() -> tuple[CommercialContract, ...]:
    return original_order(), upgrade(), add_on()
