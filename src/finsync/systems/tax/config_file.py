"""The tax engine's master data from a TOML file (`default_tax.toml` unless `[tax] file`).

Rules:
- `[sellers]` maps each legal entity to its country; `[[jurisdictions]]` and `[[rates]]`
  as in `rules.py`; see docs/tax/engine.md.
- Rates are TOML strings read as exact Decimals ("0.19"); a float is refused (it may
  already have lost the rate). Dates are TOML dates.
- Unknown sections and keys are refused, naming them, so a typo is not a silent default.
- Any problem is a `TaxConfigError` naming the file and the entry.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from finsync.domain.errors import DomainError
from finsync.systems.tax.errors import TaxConfigError
from finsync.systems.tax.rules import Jurisdiction, Rate, Rounding, TaxRules, TaxType

DEFAULT_TAX_FILE = Path(__file__).parent / "default_tax.toml"

_SECTIONS = {"sellers", "jurisdictions", "rates"}
_KEYS = {
    "jurisdictions": {"code", "tax_type", "rounding", "levies_tax", "by_region",
                      "not_taxable"},
    "rates": {"jurisdiction", "tax_code", "rate", "effective_from"},
}


def load_tax_rules(path: Path | None = None) -> TaxRules:
    target = path or DEFAULT_TAX_FILE
    try:
        data = tomllib.loads(target.read_text())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TaxConfigError(f"cannot read tax configuration {target}: {exc}") from exc
    return parse_tax_rules(data, str(target))


def parse_tax_rules(data: Mapping[str, Any], where: str = "tax configuration") -> TaxRules:
    unknown = set(data) - _SECTIONS
    if unknown:
        raise TaxConfigError(f"{where}: unknown sections {sorted(unknown)} (known: "
                             f"{sorted(_SECTIONS)})")
    try:
        jurisdictions = [_jurisdiction(_entry(e, "jurisdictions", where))
                         for e in _list(data, "jurisdictions", where)]
        codes = [j.code for j in jurisdictions]
        if len(set(codes)) != len(codes):
            raise TaxConfigError(f"{where}: a jurisdiction is configured twice")
        rates = tuple(_rate(_entry(e, "rates", where)) for e in _list(data, "rates", where))
        keys = [(r.jurisdiction, r.tax_code, r.effective_from) for r in rates]
        if len(set(keys)) != len(keys):
            raise TaxConfigError(f"{where}: a rate is configured twice for one jurisdiction, "
                                 "tax code and effective_from")
        return TaxRules({j.code: j for j in jurisdictions}, rates,
                        _sellers(data.get("sellers", {}), where))
    except TaxConfigError:
        raise
    except KeyError as exc:
        raise TaxConfigError(f"{where}: an entry misses the key {exc}") from exc
    except (DomainError, ValueError, TypeError) as exc:
        raise TaxConfigError(f"{where}: {exc}") from exc


def _list(data: Mapping[str, Any], section: str, where: str) -> list[Any]:
    value = data.get(section, [])
    if not isinstance(value, list):
        raise TaxConfigError(f"{where}: [[{section}]] must be an array of tables")
    return value


def _entry(value: Any, section: str, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise TaxConfigError(f"{where}: [[{section}]] entries must be tables")
    unknown = set(value) - _KEYS[section]
    if unknown:
        name = value.get("code") or value.get("jurisdiction") or ""
        raise TaxConfigError(f"{where}: [[{section}]] {name}: unknown keys {sorted(unknown)} "
                             f"(known: {sorted(_KEYS[section])})")
    return value


def _sellers(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        raise TaxConfigError(f"{where}: [sellers] maps legal entities to country codes")
    return dict(value)


def _flag(entry: Mapping[str, Any], key: str, default: bool) -> bool:
    value = entry.get(key, default)
    if not isinstance(value, bool):
        raise TaxConfigError(f"{key} must be true or false, not {value!r}")
    return value


def _jurisdiction(entry: Mapping[str, Any]) -> Jurisdiction:
    codes = entry.get("not_taxable", [])
    if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
        raise TaxConfigError(f"{entry['code']}: not_taxable is a list of tax codes")
    return Jurisdiction(str(entry["code"]), TaxType(entry["tax_type"]),
                        Rounding(entry.get("rounding", "line")),
                        _flag(entry, "levies_tax", True), _flag(entry, "by_region", False),
                        frozenset(codes))


def _rate(entry: Mapping[str, Any]) -> Rate:
    value = entry["rate"]
    if not isinstance(value, str):
        raise TaxConfigError(f"rate of {entry.get('jurisdiction')} must be a string like "
                             f"\"0.19\", not {value!r}")
    try:
        rate = Decimal(value)
    except InvalidOperation:
        raise TaxConfigError(f"rate {value!r} is not a decimal") from None
    since = entry["effective_from"]
    if not isinstance(since, date):
        raise TaxConfigError(f"effective_from must be a TOML date, not {since!r}")
    return Rate(str(entry["jurisdiction"]), str(entry["tax_code"]), rate, since)
