"""The tax engine's master data: jurisdictions, rates by date, taxability, sellers.

Rules:
- A jurisdiction is a country ("DE") or a country's region ("US-NY"), with its tax type
  (`vat` or `sales_tax`) and how it rounds (`line`: each line's tax half-even; `document`:
  the jurisdiction's tax on the document once, split to lines by largest remainder).
- A country that taxes by region (`by_region`, the US) needs the region configured: an
  unknown region is refused. Without a region the country answers; a country that levies
  no tax itself (`levies_tax = false`, no US federal sales tax) answers `not_taxable`.
- A country that does not tax by region ignores the region (VAT is national).
- A product tax code is either not taxable in a jurisdiction (`not_taxable`) or has a rate:
  the latest `effective_from <= on`. Neither is a refusal (`unknown_tax_rate`), never 0.
- An unknown country is refused (`unknown_tax_jurisdiction`): tax is never silently zero.
- The seller's country is its legal entity's (`sellers`); an unknown entity is refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum

from finsync.domain.errors import DomainError
from finsync.domain.tax import TaxAddress, TaxRefusedError

# A country (ISO 3166-1) or a country's region (ISO 3166-2), as `TaxAddress` spells them.
_CODE = re.compile(r"[A-Z]{2}(-[A-Z0-9]{1,3})?")

# A rate's decimal places at most ("0.08875" has 5): an amount's tax stays exact in
# 28-digit arithmetic up to the largest amount finsync accepts.
RATE_PLACES_MAX = 6

# The EU member states (ISO 3166-1), where intra-community B2B supplies reverse charge.
EU_COUNTRIES = frozenset({
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU",
    "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
})


class TaxType(StrEnum):
    VAT = "vat"
    SALES_TAX = "sales_tax"


class Rounding(StrEnum):
    LINE = "line"
    DOCUMENT = "document"


@dataclass(frozen=True, slots=True)
class Jurisdiction:
    code: str            # "DE", "US-NY"
    tax_type: TaxType
    rounding: Rounding = Rounding.LINE
    levies_tax: bool = True   # false: nothing is taxed here (no US federal sales tax)
    by_region: bool = False   # true: the country's regions tax, each configured apart
    not_taxable: frozenset[str] = frozenset()  # product tax codes this jurisdiction exempts

    def __post_init__(self) -> None:
        if not _CODE.fullmatch(self.code):
            raise DomainError(f"jurisdiction {self.code!r} is not a code like 'DE' or 'US-NY'")
        if self.by_region and "-" in self.code:
            raise DomainError(f"jurisdiction {self.code}: only a country taxes by region")

    @property
    def country(self) -> str:
        return self.code[:2]


@dataclass(frozen=True, slots=True)
class Rate:
    jurisdiction: str
    tax_code: str
    rate: Decimal
    effective_from: date

    def __post_init__(self) -> None:
        if not isinstance(self.rate, Decimal) or not 0 <= self.rate < 1:
            raise DomainError(f"rate {self.rate!r} of {self.jurisdiction}/{self.tax_code} "
                              "must be a Decimal in [0, 1)")
        exponent = self.rate.as_tuple().exponent
        if not isinstance(exponent, int) or -exponent > RATE_PLACES_MAX:
            raise DomainError(f"rate {self.rate} of {self.jurisdiction}/{self.tax_code} has "
                              f"more than {RATE_PLACES_MAX} decimal places")


@dataclass(frozen=True, slots=True)
class TaxRules:
    jurisdictions: Mapping[str, Jurisdiction]
    rates: tuple[Rate, ...]
    sellers: Mapping[str, str]  # legal entity -> its country
    _by_key: dict[tuple[str, str], list[Rate]] = field(default_factory=dict, compare=False,
                                                        repr=False)

    def __post_init__(self) -> None:
        for rate in self.rates:
            if rate.jurisdiction not in self.jurisdictions:
                raise DomainError(f"a rate names the unknown jurisdiction {rate.jurisdiction}")
            self._by_key.setdefault((rate.jurisdiction, rate.tax_code), []).append(rate)
        for entity, country in self.sellers.items():
            if len(country) != 2 or not country.isalpha() or not country.isupper():
                raise DomainError(f"seller {entity}: country {country!r} is not ISO 3166-1")

    def jurisdiction_of(self, address: TaxAddress) -> Jurisdiction:
        """Where an address is taxed (see the module's rules)."""
        country = self.jurisdictions.get(address.country)
        if country is None:
            raise TaxRefusedError(f"no tax jurisdiction is configured for country "
                                  f"{address.country}", code="unknown_tax_jurisdiction")
        if address.region is None or not country.by_region:
            return country
        code = f"{address.country}-{address.region}"
        region = self.jurisdictions.get(code)
        if region is None:
            raise TaxRefusedError(f"no tax jurisdiction is configured for region {code}",
                                  code="unknown_tax_jurisdiction")
        return region

    def rate(self, jurisdiction: str, tax_code: str, on: date) -> Decimal:
        """The latest rate in effect on `on`; none is a refusal, never zero."""
        found = [r for r in self._by_key.get((jurisdiction, tax_code), ())
                 if r.effective_from <= on]
        if not found:
            raise TaxRefusedError(f"no tax rate for tax code {tax_code!r} in {jurisdiction} "
                                  f"on {on}", code="unknown_tax_rate")
        return max(found, key=lambda r: r.effective_from).rate

    def seller_country(self, legal_entity: str) -> str:
        country = self.sellers.get(legal_entity)
        if country is None:
            raise TaxRefusedError(f"no country is configured for legal entity {legal_entity}",
                                  code="unknown_legal_entity")
        return country
