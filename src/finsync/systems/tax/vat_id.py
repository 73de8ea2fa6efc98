"""The format of an EU VAT identification number.

Rules:
- Spaces, dots and hyphens are ignored and letters read in upper case.
- A VAT id starts with its member state's prefix (the ISO code, but "EL" for Greece), so
  a VAT id of another country than the customer's address is not valid for it.
- The national part follows the member state's pattern where one is listed here, else
  2 to 12 letters and digits. The format is checked, not the register (VIES): a
  well-formed id that was never issued passes, as it does in most billing systems.
"""

from __future__ import annotations

import re

_PREFIX = {"GR": "EL"}

_NATIONAL = {
    "AT": r"U\d{8}",
    "BE": r"[01]\d{9}",
    "DE": r"\d{9}",
    "DK": r"\d{8}",
    "EL": r"\d{9}",
    "ES": r"[A-Z0-9]\d{7}[A-Z0-9]",
    "FI": r"\d{8}",
    "FR": r"[A-HJ-NP-Z0-9]{2}\d{9}",
    "IE": r"\d[A-Z0-9+*]\d{5}[A-Z]{1,2}",
    "IT": r"\d{11}",
    "LU": r"\d{8}",
    "NL": r"\d{9}B\d{2}",
    "PL": r"\d{10}",
    "PT": r"\d{9}",
    "SE": r"\d{12}",
}
_GENERIC = r"[A-Z0-9]{2,12}"
_NOISE = re.compile(r"[\s.\-]")


def normalised(vat_id: str) -> str:
    return _NOISE.sub("", vat_id).upper()


def is_valid_format(vat_id: str, country: str) -> bool:
    """Whether `vat_id` is a well-formed VAT id of the member state `country`."""
    value = normalised(vat_id)
    prefix = _PREFIX.get(country, country)
    if not value.startswith(prefix):
        return False
    pattern = _NATIONAL.get(prefix, _GENERIC)
    return re.fullmatch(pattern, value[len(prefix):]) is not None
