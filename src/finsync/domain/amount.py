r"""Amounts as the wire spells them: one strict grammar, read exactly.

Rules:
- An amount is a JSON string of digits with an optional leading `-` and an optional `.` and
  decimals (`-?(0|[1-9][0-9]*)(\.[0-9]+)?`): no exponent (`1e3`), no `+`, no whitespace,
  no leading zeros, no `NaN` or `Infinity` (`invalid_amount`). It is written in the same
  plain notation (`1E+2` is written `100`), so everything written reads back.
- A document amount has at most its currency's exponent in decimal places
  (`amount_precision`) and is below `AMOUNT_CEILING` in absolute value
  (`amount_out_of_range`), so its minor units fit 64 bits in every currency.
- A price may be finer, up to 28 significant digits: the precision of decimal arithmetic,
  so a price restated per billing period stays exact.
- Error messages quote a value cut short (`shown`): a sender controls its length.
"""

from __future__ import annotations

import re
from decimal import Decimal

from finsync.domain.errors import MappingError
from finsync.domain.money import AMOUNT_CEILING

_AMOUNT = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?")
PRICE_DIGITS_MAX = 28  # the default decimal context's precision: prices stay exact in it


def plain(amount: Decimal) -> str:
    """An amount in the notation the reader accepts (`1E+2` is written `100`)."""
    return format(amount, "f")


def parse_amount(data: object, path: str) -> Decimal:
    """An amount as the wire spells it, exactly, or `invalid_amount` naming the rule."""
    if not isinstance(data, str):
        raise MappingError(f"{path} must be a decimal string, not {shown(data)}",
                           code="invalid_amount")
    if _AMOUNT.fullmatch(data) is None:
        raise MappingError(f"{path} must be a plain decimal string (digits, an optional "
                           "leading '-', an optional '.' and decimals; no exponent, '+', "
                           f"spaces or leading zeros), not {shown(data)}",
                           code="invalid_amount")
    return Decimal(data)


def check_document_amount(amount: Decimal, path: str, currency: str, places_max: int) -> None:
    found = places(amount)
    if found > places_max:
        raise MappingError(f"{path} {shown(plain(amount))} has {found} decimal places: "
                           f"{currency} amounts are in minor units (at most {places_max})",
                           code="amount_precision")
    if abs(amount) >= AMOUNT_CEILING:
        raise MappingError(f"{path} {shown(plain(amount))} is out of range: amounts must be "
                           f"below {AMOUNT_CEILING:,f} (AMOUNT_CEILING)",
                           code="amount_out_of_range")


def check_price_digits(amount: Decimal, path: str) -> None:
    digits = len(amount.as_tuple().digits)
    if digits > PRICE_DIGITS_MAX:
        raise MappingError(f"{path} {shown(plain(amount))} has {digits} significant digits: a "
                           f"price carries at most {PRICE_DIGITS_MAX}", code="amount_precision")


def places(amount: Decimal) -> int:
    power = amount.as_tuple().exponent
    assert isinstance(power, int)  # parse_amount reads finite amounts only
    return max(0, -power)


def shown(value: object, chars_max: int = 40) -> str:
    """A value as an error message quotes it, cut short: the message must stay small
    whatever a sender put in the value."""
    text = repr(value)
    return text if len(text) <= chars_max else f"{text[:chars_max]}… ({len(text):,} chars)"
