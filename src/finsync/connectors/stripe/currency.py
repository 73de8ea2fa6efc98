"""Stripe's own currency exponents: what an integer amount of Stripe's API means.

Stripe sends every amount as an integer in the currency's smallest unit *as Stripe counts
it* (docs.stripe.com/currencies, "Minor units in API amounts"). That is ISO 4217's minor
unit except for Stripe's documented special cases, so an amount is converted here, at the
boundary, and nowhere else: `money` for document amounts, `price` for unit prices.

Rules:
- The exponent of a currency on Stripe's API is ISO 4217's (`domain.money`) unless
  `SPECIAL_EXPONENTS` names it. Today that is ISK: Stripe made it zero-decimal in April 2023
  but kept it two-decimal on the API for backwards compatibility ("ISK will remain a
  two-decimal currency in the Stripe API, and an ISK amount of `100` will continue to
  represent 1 króna", support.stripe.com/questions/deprecation-of-fractional-isk-charges-
  and-refunds; the same special case is in Stripe's own iOS SDK,
  `NSDecimalNumber+Stripe_Currency.swift`). ISO 4217 says ISK has no minor unit: 40 000
  ISK is `4000000` on the API, not 4 000 000 ISK.
- Stripe's other special cases do not change what an invoice or payment amount means:
  HUF and TWD are two-decimal on the API and in ISO 4217 (Stripe only pays them out in
  whole units); Stripe's zero-decimal currencies (`ZERO_DECIMAL`, UGX among them) are
  zero-decimal in ISO 4217 too; the three-decimal ones (`THREE_DECIMAL`: KWD, BHD …) are
  three-decimal on the API and in ISO 4217 (Stripe asks that payment amounts end in 0).
  `tests/unit/stripe/test_currency.py` checks these lists against `CURRENCY_EXPONENTS`.
- An API amount finer than the currency's ISO minor unit (a fractional króna Stripe
  accepted before April 2023) cannot be booked: it is refused (`amount_precision`), never
  rounded. An amount at or above `AMOUNT_CEILING` is `amount_out_of_range`.
- A currency finsync does not know is `unknown_currency`.
"""

from __future__ import annotations

from decimal import Decimal

from finsync.domain import amount
from finsync.domain.errors import DomainError, MappingError
from finsync.domain.money import AMOUNT_CEILING, Money
from finsync.domain.money import exponent as iso_exponent

# Currencies whose exponent on Stripe's API is not ISO 4217's (see the module rules).
SPECIAL_EXPONENTS: dict[str, int] = {"ISK": 2}

# Stripe's documented zero-decimal and three-decimal currencies (docs.stripe.com/currencies
# #zero-decimal, #three-decimal), as far as finsync books them: both the API and ISO 4217
# agree on their exponent.
ZERO_DECIMAL = frozenset({"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG",
                          "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"})
THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})


def code_of(raw: str, path: str) -> str:
    """A Stripe currency (lowercase on the API) as finsync's code, if finsync books it."""
    code = raw.upper()
    try:
        iso_exponent(code)
    except DomainError as exc:
        raise MappingError(f"{path}.currency: {exc}", code="unknown_currency") from exc
    return code


def exponent(currency: str) -> int:
    """Decimal places of an integer amount of `currency` on Stripe's API."""
    return SPECIAL_EXPONENTS.get(currency, iso_exponent(currency))


def money(units: int, currency: str, path: str) -> Money:
    """Stripe's integer `units` of `currency` as Money at the ISO minor unit."""
    exact = Decimal(units).scaleb(-exponent(currency))
    # Before quantizing: an amount beyond the ceiling may also be beyond Decimal's precision.
    if abs(exact) >= AMOUNT_CEILING:
        raise MappingError(f"{path} {amount.shown(amount.plain(exact))} {currency} is out of "
                           f"range: amounts must be below {AMOUNT_CEILING:,f} (AMOUNT_CEILING)",
                           code="amount_out_of_range")
    quantum = Decimal(1).scaleb(-iso_exponent(currency))
    booked = exact.quantize(quantum)
    if booked != exact:
        raise MappingError(f"{path} {units} is {amount.plain(exact)} {currency}, finer than "
                           f"{currency}'s minor unit ({amount.plain(quantum)}): it cannot be "
                           "booked", code="amount_precision")
    return Money(booked, currency)


def price(units: Decimal, currency: str) -> Money:
    """A unit price in Stripe's units (`unit_amount`, `unit_amount_decimal`), exact: a price
    may be finer than the minor unit."""
    return Money(units.scaleb(-exponent(currency)), currency)
