"""The tax engine from the configuration: `[systems.tax]`, `[tax] file`."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from finsync.bootstrap import build_ports, build_tax_port, build_tax_server
from finsync.config import DEFAULT_CONFIG, ConfigError, parse_config
from finsync.connectors.ports import TaxPort
from finsync.domain.money import Money
from finsync.domain.tax import TaxRefusedError, TaxUnavailableError
from tests.unit.tax.support import line, request


def default() -> dict[str, Any]:
    return tomllib.loads(DEFAULT_CONFIG.read_text())


def test_default_configuration_has_an_embedded_tax_engine(tmp_path: Path,
                                                          engine: Engine) -> None:
    port = build_tax_port(parse_config(default(), tmp_path), engine)
    assert isinstance(port, TaxPort)
    assert port.quote(request("US", "NY", line("100.00"))).lines[0].tax == Money.of("4.00",
                                                                                    "USD")


def test_tax_file_overrides_the_shipped_rules(tmp_path: Path, engine: Engine) -> None:
    (tmp_path / "tax.toml").write_text(
        '[sellers]\nle_us = "US"\n\n[[jurisdictions]]\ncode = "US"\ntax_type = "sales_tax"\n'
        'levies_tax = false\nby_region = true\n')
    data = default()
    data["tax"] = {"file": "tax.toml"}
    port = build_ports(parse_config(data, tmp_path), engine).tax()
    with pytest.raises(TaxRefusedError) as caught:  # NY is not in that file
        port.quote(request("US", "NY", line("100.00")))
    assert caught.value.code == "unknown_tax_jurisdiction"


def test_no_tax_system_is_a_configuration_error(tmp_path: Path, engine: Engine) -> None:
    data = default()
    del data["systems"]["tax"]
    data["routes"] = {event: [t for t in targets if t != "tax"]  # the shipped routes name it
                      for event, targets in data["routes"].items()}
    with pytest.raises(ConfigError, match="role 'tax'"):
        build_tax_port(parse_config(data, tmp_path), engine)


def test_unknown_tax_setting_is_refused(tmp_path: Path) -> None:
    data = default()
    data["tax"] = {"fle": "tax.toml"}
    with pytest.raises(ConfigError, match=r"tax\.fle"):
        parse_config(data, tmp_path)


def http_config(tmp_path: Path, **system: str) -> Any:
    data = default()
    data["systems"]["tax"] = {"role": "tax", "connector": "http", **system}
    return parse_config(data, tmp_path)


def test_http_tax_engine_from_the_configuration(tmp_path: Path, engine: Engine,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAX_TOKEN", "secret-of-the-engine")
    port = build_tax_port(http_config(tmp_path, url="http://127.0.0.1:1",
                                      token_env="TAX_TOKEN"), engine)
    assert isinstance(port, TaxPort)
    with pytest.raises(TaxUnavailableError):  # nothing listens on port 1
        port.quote(request("US", "NY", line("100.00")))


def test_http_tax_engine_needs_its_url_and_token(tmp_path: Path, engine: Engine,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAX_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="needs url"):
        build_tax_port(http_config(tmp_path, token_env="TAX_TOKEN"), engine)
    with pytest.raises(ConfigError, match="TAX_TOKEN is not set"):
        build_tax_port(http_config(tmp_path, url="http://127.0.0.1:1",
                                   token_env="TAX_TOKEN"), engine)
    with pytest.raises(ConfigError, match="TAX_TOKEN is not set"):
        build_tax_server(parse_config(default(), tmp_path), engine, "TAX_TOKEN")
