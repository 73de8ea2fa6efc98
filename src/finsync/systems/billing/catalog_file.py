"""The billing catalogue and settings from a TOML file (`default_catalog.toml` by default).

Rules:
- `[[products]]`, `[[prices]]` (each naming its `product`), `[[tax_rates]]` and `[billing]`
  settings; see docs/billing/service.md.
- Amounts and rates are TOML strings, read as exact Decimals; a float is refused (it may
  already have lost the amount). Unknown keys are refused, so a typo is not a silent default.
- Any problem is a `CatalogError` naming the entry.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from finsync.domain.catalog import (
    BillingFrequency,
    Price,
    PriceModel,
    Product,
    StandaloneSellingPrice,
)
from finsync.domain.errors import DomainError
from finsync.domain.money import Money
from finsync.systems.billing.catalog import Catalog
from finsync.systems.billing.errors import CatalogError
from finsync.systems.billing.pricing import PricePlan, Tier, Timing
from finsync.systems.billing.proration import ProrationRule, ProrationUnit
from finsync.systems.billing.state import BillingConfig, DowngradePolicy
from finsync.systems.billing.tax import RateTableTaxEngine, TaxRate

DEFAULT_CATALOG = Path(__file__).parent / "default_catalog.toml"

_KEYS = {
    "billing": {"proration", "downgrade_policy", "payment_terms_days"},
    "products": {"id", "name", "tax_code", "revenue_pattern"},
    "prices": {"id", "product", "model", "unit_amount", "currency", "frequency",
               "included_quantity", "timing", "tiers"},
    "tiers": {"up_to", "unit_amount", "flat_amount"},
    "tax_rates": {"country", "tax_code", "rate", "effective_from"},
    "standalone_selling_prices": {"product", "amount", "currency", "effective_from",
                                  "effective_to", "low", "high"},
}


def load_billing_config(path: Path | None = None) -> BillingConfig:
    target = path or DEFAULT_CATALOG
    try:
        data = tomllib.loads(target.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CatalogError(f"cannot read billing catalogue {target}: {exc}") from exc
    return parse_billing_config(data, str(target))


def load_standalone_selling_prices(path: Path | None = None
                                   ) -> tuple[StandaloneSellingPrice, ...]:
    """The catalogue's SSPs (billing owns them; the revenue engine allocates by them)."""
    target = path or DEFAULT_CATALOG
    try:
        data = tomllib.loads(target.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CatalogError(f"cannot read billing catalogue {target}: {exc}") from exc
    entries = [_entry(e, "standalone_selling_prices", str(target))
               for e in data.get("standalone_selling_prices", [])]
    try:
        return tuple(_ssp(e) for e in entries)
    except KeyError as exc:
        raise CatalogError(f"{target}: an SSP misses the key {exc}") from exc
    except (DomainError, ValueError, TypeError) as exc:
        raise CatalogError(f"{target}: {exc}") from exc


def _ssp(entry: Mapping[str, Any]) -> StandaloneSellingPrice:
    currency = str(entry["currency"])

    def money(key: str) -> Money | None:
        return None if entry.get(key) is None else Money.of(str(entry[key]), currency)

    until = entry.get("effective_to")
    return StandaloneSellingPrice(
        str(entry["product"]), Money.of(str(entry["amount"]), currency),
        date.fromisoformat(str(entry["effective_from"])),
        None if until is None else date.fromisoformat(str(until)), money("low"), money("high"))


def parse_billing_config(data: Mapping[str, Any], where: str = "catalogue") -> BillingConfig:
    unknown = set(data) - set(_KEYS)
    if unknown:
        raise CatalogError(f"{where}: unknown sections {sorted(unknown)}")
    settings = _entry(data.get("billing", {}), "billing", where)
    try:
        catalog = Catalog(tuple(_product(_entry(p, "products", where))
                                for p in data.get("products", [])),
                          tuple(_plan(_entry(p, "prices", where))
                                for p in data.get("prices", [])))
        taxes = RateTableTaxEngine(tuple(_rate(_entry(r, "tax_rates", where))
                                         for r in data.get("tax_rates", [])))
        return BillingConfig(
            catalog, taxes,
            ProrationRule(ProrationUnit(settings.get("proration", "day"))),
            DowngradePolicy(settings.get("downgrade_policy", "credit_now")),
            _integer(settings, "payment_terms_days", 30))
    except CatalogError:
        raise
    except KeyError as exc:
        raise CatalogError(f"{where}: an entry misses the key {exc}") from exc
    except (DomainError, ValueError, TypeError) as exc:
        raise CatalogError(f"{where}: {exc}") from exc


def _entry(value: Any, section: str, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise CatalogError(f"{where}: [{section}] entries must be tables")
    unknown = set(value) - _KEYS[section]
    if unknown:
        raise CatalogError(f"{where}: [{section}] {value.get('id', '')}: unknown keys "
                           f"{sorted(unknown)}")
    return value


def _decimal(entry: Mapping[str, Any], key: str) -> Decimal:
    value = entry[key]
    if not isinstance(value, str):
        raise CatalogError(f"{key} must be a string like \"120.00\", not {value!r}")
    try:
        return Decimal(value)
    except InvalidOperation:
        raise CatalogError(f"{key} {value!r} is not a decimal") from None


def _integer(entry: Mapping[str, Any], key: str, default: int) -> int:
    value = entry.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise CatalogError(f"{key} must be a whole number >= 0, not {value!r}")
    return value


def _product(entry: Mapping[str, Any]) -> Product:
    return Product(entry["id"], entry["name"], entry.get("tax_code", "saas"),
                   entry.get("revenue_pattern", "ratable"))


def _plan(entry: Mapping[str, Any]) -> PricePlan:
    currency = entry["currency"]
    price = Price(entry["id"], entry["product"], PriceModel(entry["model"]),
                  Money(_decimal(entry, "unit_amount"), currency),
                  BillingFrequency(entry["frequency"]),
                  _integer(entry, "included_quantity", 0))
    tiers = tuple(_tier(_entry(t, "tiers", entry["id"]), currency)
                  for t in entry.get("tiers", []))
    return PricePlan(price, tiers, Timing(entry.get("timing", "in_advance")))


def _tier(entry: Mapping[str, Any], currency: str) -> Tier:
    flat = Money(_decimal(entry, "flat_amount"), currency) if "flat_amount" in entry else None
    up_to = entry.get("up_to")
    if up_to is not None and (not isinstance(up_to, int) or isinstance(up_to, bool)):
        raise CatalogError(f"tier up_to must be a whole number, not {up_to!r}")
    return Tier(up_to, Money(_decimal(entry, "unit_amount"), currency), flat)


def _rate(entry: Mapping[str, Any]) -> TaxRate:
    since = entry.get("effective_from", date.min)
    if not isinstance(since, date):
        raise CatalogError(f"effective_from must be a TOML date, not {since!r}")
    return TaxRate(entry["country"], entry["tax_code"], _decimal(entry, "rate"), since)
