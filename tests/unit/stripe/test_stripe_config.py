"""Configuration of a Stripe source: checked at start-up, secrets only from the environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from finsync.bootstrap import build_mappers, build_stripe_client, build_webhooks
from finsync.config import ConfigError, parse_config
from finsync.domain.events import BusinessDomain
from finsync.storage.db import make_engine


def data(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "ownership": {d.value: "stripe" for d in BusinessDomain},
        "sources": {"stripe": "stripe"},
        "stripe": {"stripe": {"legal_entity": "le_us", "api_key_env": "T_STRIPE_KEY",
                              "webhook_secrets": [{"env": "T_WHSEC"},
                                                  {"env": "T_WHSEC_OLD"}]}},
    }
    return base | overrides


def test_a_stripe_source_needs_its_section_and_a_section_its_source() -> None:
    with pytest.raises(ConfigError, match=r"\[stripe.stripe\]"):
        parse_config(data(stripe={}), Path("."))
    with pytest.raises(ConfigError, match="not a source"):
        parse_config(data(sources={"canonical": "canonical"}), Path("."))


def test_secrets_come_from_the_environment_and_missing_ones_are_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    config = parse_config(data(), Path("."))
    monkeypatch.delenv("T_STRIPE_KEY", raising=False)
    monkeypatch.delenv("T_WHSEC", raising=False)
    monkeypatch.delenv("T_WHSEC_OLD", raising=False)
    with pytest.raises(ConfigError, match="T_STRIPE_KEY"):
        build_stripe_client(config, "stripe")
    engine = make_engine("sqlite://")
    with pytest.raises(ConfigError, match="T_WHSEC"):
        build_webhooks(config, engine)
    monkeypatch.setenv("T_WHSEC_OLD", "whsec_old")  # every secret named must be there
    with pytest.raises(ConfigError, match=r"webhook_secrets\[0\].*T_WHSEC "):
        build_webhooks(config, engine)
    monkeypatch.setenv("T_WHSEC", "whsec_new")
    assert set(build_webhooks(config, engine)) == {"stripe"}
    assert build_mappers(config).knows("stripe")
    engine.dispose()


def test_a_usage_source_reads_meters_of_a_configured_stripe_source() -> None:
    usage = {"sources": ["stripe_meters"], "stripe": {"stripe_meters": "stripe"}}
    assert parse_config(data(usage=usage), Path(".")).usage.stripe == {"stripe_meters": "stripe"}
    with pytest.raises(ConfigError, match=r"\[usage.stripe\] metering is not a usage source"):
        parse_config(data(usage={"sources": [], "stripe": {"metering": "stripe"}}), Path("."))
    with pytest.raises(ConfigError, match="'other', which is not a Stripe source"):
        parse_config(data(usage={"sources": ["m"], "stripe": {"m": "other"}}), Path("."))
