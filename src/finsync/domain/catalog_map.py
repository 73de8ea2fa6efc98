"""The catalogue map: what each CPQ product is in billing, in the revenue engine and in the
ERP, and the translation of a commercial contract into the order billing takes.

Rules:
- One entry per CPQ product code: billing's product id, billing's price id per currency,
  the product the revenue engine's standalone-selling-price table knows, and the ERP
  revenue account. The map is read from TOML (`parse`): unknown keys, a code given twice, an
  empty id or a currency that is not three capitals are refused, with the entry named.
- The map's content has one digest (`digest`): the same entries in any order, spelled in any
  TOML layout, give the same digest, so a catalogue version moves only when content does.
- `translate` is pure: every line of the contract is mapped, or nothing is. A line whose
  product has no entry, or no price in the contract's currency, is an `UnmappedProductError`
  naming every such line and product (finance fixes the map once, not once per line).
- An order carries the catalogue version it was translated with, and CPQ's version; its id
  is the quote id (billing's amendment id and the order's idempotency key).
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass

from finsync.domain.commercial import CommercialContract, OrderLine, SubscriptionOrder
from finsync.domain.contract import RampStep
from finsync.domain.errors import DomainError

_ENTRY_KEYS = frozenset({"code", "billing_product", "prices", "ssp_product",
                         "revenue_account", "name"})
_TOP_KEYS = frozenset({"products"})
_CURRENCY = re.compile(r"^[A-Z]{3}$")
ID_MAX_CHARS = 255  # the hub tables' id columns
ENTRIES_MAX = 10_000


class CatalogMapError(DomainError):
    """A catalogue map file that cannot be loaded (the message names the entry)."""

    code = "catalog_map_invalid"


class UnmappedProductError(DomainError):
    """A commercial contract names a product the catalogue map cannot translate."""

    code = "unmapped_product"

    def __init__(self, message: str, lines: tuple[tuple[str, str], ...]) -> None:
        super().__init__(message)
        self.lines = lines  # (line id, product code) of each unmapped line


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    code: str  # CPQ's product code
    billing_product: str
    prices: tuple[tuple[str, str], ...]  # (currency, billing price id), by currency
    ssp_product: str  # the revenue engine's SSP entry
    revenue_account: str  # the ERP's revenue account
    name: str = ""

    def price_in(self, currency: str) -> str | None:
        return dict(self.prices).get(currency)


@dataclass(frozen=True, slots=True)
class CatalogMap:
    entries: tuple[CatalogEntry, ...]  # by code

    def __post_init__(self) -> None:
        codes = [e.code for e in self.entries]
        if codes != sorted(set(codes)):
            raise CatalogMapError("catalogue map entries are one per code, in code order")

    def get(self, code: str) -> CatalogEntry | None:
        return next((e for e in self.entries if e.code == code), None)


def parse(text: str) -> CatalogMap:
    """The map in a catalogue map TOML file (see default_cpq_catalog.toml)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogMapError(f"the catalogue map is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise CatalogMapError(f"the catalogue map has unknown keys: {', '.join(unknown)} "
                              "(only [[products]])")
    raw = data.get("products", [])
    if not isinstance(raw, list) or len(raw) > ENTRIES_MAX:
        raise CatalogMapError(f"[[products]] must be a list of at most {ENTRIES_MAX} entries")
    entries = [_entry(index, item) for index, item in enumerate(raw)]
    seen: set[str] = set()
    for entry in entries:
        if entry.code in seen:
            raise CatalogMapError(f"product {entry.code!r} is mapped twice")
        seen.add(entry.code)
    return CatalogMap(tuple(sorted(entries, key=lambda e: e.code)))


def _entry(index: int, item: object) -> CatalogEntry:
    where = f"[[products]] #{index + 1}"
    if not isinstance(item, Mapping):
        raise CatalogMapError(f"{where} is not a table")
    code = item.get("code")
    if isinstance(code, str) and code:
        where = f"product {code!r}"
    unknown = sorted(set(item) - _ENTRY_KEYS)
    if unknown:
        raise CatalogMapError(f"{where}: unknown keys {', '.join(unknown)} (allowed: "
                              f"{', '.join(sorted(_ENTRY_KEYS))})")
    prices = item.get("prices")
    if not isinstance(prices, Mapping) or not prices:
        raise CatalogMapError(f"{where}: prices = {{ USD = \"<billing price id>\" }} "
                              "names billing's price per currency")
    for currency, price in prices.items():
        if not _CURRENCY.match(str(currency)):
            raise CatalogMapError(f"{where}: {currency!r} is not an ISO 4217 currency code")
        _id(where, f"prices.{currency}", price)
    return CatalogEntry(
        code=_id(where, "code", code),
        billing_product=_id(where, "billing_product", item.get("billing_product")),
        prices=tuple(sorted((str(c), str(p)) for c, p in prices.items())),
        ssp_product=_id(where, "ssp_product", item.get("ssp_product")),
        revenue_account=_id(where, "revenue_account", item.get("revenue_account")),
        name=str(item.get("name", ""))[:ID_MAX_CHARS])


def _id(where: str, key: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise CatalogMapError(f"{where}: {key} must be a non-empty string")
    if len(value) > ID_MAX_CHARS:
        raise CatalogMapError(f"{where}: {key} is longer than {ID_MAX_CHARS} characters")
    return value


def digest(catalog: CatalogMap) -> str:
    """sha256 of the map's content, independent of how the file spelled it."""
    rows = [[e.code, e.billing_product, [list(p) for p in e.prices], e.ssp_product,
             e.revenue_account, e.name] for e in catalog.entries]
    return hashlib.sha256(json.dumps(rows, separators=(",", ":")).encode()).hexdigest()


def translate(contract: CommercialContract, catalog: CatalogMap,
              catalog_version: int) -> SubscriptionOrder:
    """The order billing takes for `contract`, in billing's product and price ids."""
    unmapped: list[tuple[str, str]] = []
    lines: list[OrderLine] = []
    for line in contract.lines:
        entry = catalog.get(line.product_code)
        price = None if entry is None else entry.price_in(contract.currency)
        if entry is None or price is None:
            unmapped.append((line.line_id, line.product_code))
            continue
        lines.append(OrderLine(
            line_id=line.line_id, product_id=entry.billing_product, price_id=price,
            quantity=line.quantity, unit_price=line.net_unit_price,
            start_date=line.start_date, end_date=line.end_date,
            ramp=tuple(RampStep(s.starts_on, s.quantity, s.net_unit_price)
                       for s in line.ramp)))
    if unmapped:
        named = "; ".join(f"line {line_id}: product {code}" for line_id, code in unmapped)
        raise UnmappedProductError(
            f"catalogue map version {catalog_version} has no {contract.currency} price for "
            f"{named}", tuple(unmapped))
    return SubscriptionOrder(
        id=contract.quote_id, kind=contract.kind, contract_id=contract.id,
        cpq_version=contract.version, customer_id=contract.bill_to_id,
        legal_entity=contract.legal_entity, currency=contract.currency,
        start_date=contract.start_date, end_date=contract.end_date,
        effective_date=contract.effective_date, billing_frequency=contract.billing_frequency,
        lines=tuple(lines), proration=contract.proration, auto_renew=contract.auto_renew,
        catalog_version=catalog_version)
