"""The tax configuration file: the default loads, mistakes are refused by name."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from finsync.systems.tax.config_file import load_tax_rules, parse_tax_rules
from finsync.systems.tax.errors import TaxConfigError
from finsync.systems.tax.vat_id import is_valid_format

US = {"code": "US", "tax_type": "sales_tax", "levies_tax": False, "by_region": True}


def test_default_file_has_the_demo_figures() -> None:
    rules = load_tax_rules()
    assert dict(rules.sellers) == {"le_us": "US", "le_eu": "DE"}
    assert {"GB", "DE", "FR", "US", "US-NY", "US-TX", "US-WA", "US-CA", "US-FL"} \
        <= set(rules.jurisdictions)
    assert "saas" in rules.jurisdictions["US-CA"].not_taxable


@pytest.mark.parametrize(("data", "message"), [
    ({"taxes": []}, "unknown sections ['taxes']"),
    ({"jurisdictions": [{**US, "roundng": "line"}]}, "unknown keys ['roundng']"),
    ({"jurisdictions": [US], "rates": [{"jurisdiction": "US", "tax_code": "saas",
                                        "rate": 0.04, "effective_from": "2020-01-01"}]},
     "must be a string"),
    ({"jurisdictions": [US], "rates": [{"jurisdiction": "US-NY", "tax_code": "saas",
                                        "rate": "0.04", "effective_from": date(2020, 1, 1)}]},
     "unknown jurisdiction US-NY"),
    ({"jurisdictions": [US, US]}, "configured twice"),
    ({"jurisdictions": [{**US, "rounding": "invoice"}]}, "'invoice' is not a valid Rounding"),
    ({"jurisdictions": [{**US, "levies_tax": "no"}]}, "levies_tax must be true or false"),
    ({"jurisdictions": [{"code": "US"}]}, "misses the key 'tax_type'"),
    ({"sellers": {"le_us": "usa"}}, "not ISO 3166-1"),
])
def test_mistakes_are_refused_by_name(data: dict[str, Any], message: str) -> None:
    with pytest.raises(TaxConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_tax_rules(data)


def test_an_unreadable_file_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "tax.toml"
    broken.write_text("[[jurisdictions]\n")
    with pytest.raises(TaxConfigError, match="cannot read"):
        load_tax_rules(broken)


@pytest.mark.parametrize(("vat_id", "country", "valid"), [
    ("FR40303265045", "FR", True),
    ("fr 40 303 265 045", "FR", True),
    ("DE123456789", "DE", True),
    ("DE12345678", "DE", False),       # one digit short
    ("DE123456789", "FR", False),      # another country's id
    ("EL123456789", "GR", True),       # Greece's prefix is EL
    ("NL123456789B01", "NL", True),
    ("ATU12345678", "AT", True),
    ("CZ12345678", "CZ", True),        # no national pattern: 2 to 12 letters and digits
    ("CZ1", "CZ", False),
])
def test_vat_id_format(vat_id: str, country: str, valid: bool) -> None:
    assert is_valid_format(vat_id, country) is valid


@pytest.mark.parametrize("code", ["us-ny", "US-ABCD", "USA", "US-NY-NYC", "D"])
def test_jurisdiction_codes_are_those_an_address_can_name(code: str) -> None:
    with pytest.raises(TaxConfigError, match="not a code like"):
        parse_tax_rules({"jurisdictions": [{"code": code, "tax_type": "vat"}]})


def test_a_rate_finer_than_six_places_is_refused() -> None:
    with pytest.raises(TaxConfigError, match="more than 6 decimal places"):
        parse_tax_rules({"jurisdictions": [{"code": "DE", "tax_type": "vat"}],
                         "rates": [{"jurisdiction": "DE", "tax_code": "saas",
                                    "rate": "0.1900001", "effective_from": date(2020, 1, 1)}]})

