"""The billing catalogue and settings from a TOML file (`default_catalog.toml` by default).

Rules:
- `[[products]]`, `[[prices]]` (each naming its `product`; `tax_behavior` "exclusive" by
  default, "inclusive" on one-off prices only) and `[billing]` settings; see
  docs/billing/service.md.
- Billing computes no tax: a catalogue that still has `[[tax_rates]]` is refused
  (`TaxRatesMovedError`), as tax rates live in the tax engine's file now. The tax engine
  billing asks is given by the caller (`tax`), never read from this file.
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
from finsync.systems.billing.errors import CatalogError, TaxRatesMovedError
from finsync.systems.billing.pricing import PricePlan, TaxBehavior, Tier, Timing
from finsync.systems.billing.proration import ProrationRule, ProrationUnit
from finsync.systems.billing.state import BillingConfig, DowngradePolicy
from finsync.systems.billing.tax import TaxQuoter

DEFAULT_CATALOG = Path(__file__).parent / "default_catalog.toml"

_KEYS = {
    "billing": {"proration", "downgrade_policy", "payment_terms_days"},
    "products": {"id", "name", "tax_code", "revenue_pattern"},
    "prices": {"id", "product", "model", "unit_amount", "currency", "frequency",
               "included_quantity", "timing", "tiers", "tax_behavior"},
    "tiers": {"up_to", "unit_amount", "flat_amount"},
    "standalone_selling_prices": {"product", "amount", "currency", "effective_from",
                                  "effective_to", "low", "high"},
}


def load_billing_config(path: Path | None = None, *, tax: TaxQuoter) -> BillingConfig:
    """The catalogue and settings of `path` (the shipped file by default), asking `tax`."""
    target = path or DEFAULT_CATALOG
    return parse_billing_config(_data(target), str(target), tax=tax)


def load_catalog(path: Path | None = None) -> Catalog:
    """The catalogue alone (products and prices), for readers that issue nothing."""
    target = path or DEFAULT_CATALOG
    return _catalog(_data(target), str(target))


def _data(target: Path) -> Mapping[str, Any]:
    try:
        return tomllib.loads(target.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CatalogError(f"cannot read billing catalogue {target}: {exc}") from exc


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


def parse_billing_config(data: Mapping[str, Any], where: str = "catalogue", *,
                         tax: TaxQuoter) -> BillingConfig:
    catalog = _catalog(data, where)
    settings = _entry(data.get("billing", {}), "billing", where)
    try:
        return BillingConfig(
            catalog, tax,
            ProrationRule(ProrationUnit(settings.get("proration", "day"))),
            DowngradePolicy(settings.get("downgrade_policy", "credit_now")),
            _integer(settings, "payment_terms_days", 30))
    except CatalogError:
        raise
    except (DomainError, ValueError, TypeError) as exc:
        raise CatalogError(f"{where}: {exc}") from exc


def _catalog(data: Mapping[str, Any], where: str) -> Catalog:
    if "tax_rates" in data:
        raise TaxRatesMovedError(f"{where}: [[tax_rates]] is no longer read by billing: tax "
                                 "rates live in the tax engine's file now; move them there")
    unknown = set(data) - set(_KEYS)
    if unknown:
        raise CatalogError(f"{where}: unknown sections {sorted(unknown)}")
    try:
        return Catalog(tuple(_product(_entry(p, "products", where))
                             for p in data.get("products", [])),
                       tuple(_plan(_entry(p, "prices", where))
                             for p in data.get("prices", [])))
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
    return PricePlan(price, tiers, Timing(entry.get("timing", "in_advance")),
                     TaxBehavior(entry.get("tax_behavior", "exclusive")))


def _tier(entry: Mapping[str, Any], currency: str) -> Tier:
    flat = Money(_decimal(entry, "flat_amount"), currency) if "flat_amount" in entry else None
    up_to = entry.get("up_to")
    if up_to is not None and (not isinstance(up_to, int) or isinstance(up_to, bool)):
        raise CatalogError(f"tier up_to must be a whole number, not {up_to!r}")
    return Tier(up_to, Money(_decimal(entry, "unit_amount"), currency), flat)
