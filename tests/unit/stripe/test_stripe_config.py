"""Configuration of a Stripe source: checked at start-up, secrets only from the environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from finsync.bootstrap import build_mappers, build_ports, build_stripe_client, build_webhooks
from finsync.config import ConfigError, parse_config
from finsync.connectors.ports import BillingRecordsPort
from finsync.connectors.stripe.records import StripeBillingRecords
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


def billing(**system: Any) -> dict[str, Any]:
    return data(systems={"books": {"role": "billing", "connector": "stripe", **system}})


def test_stripe_plays_billing_for_a_configured_source_only() -> None:
    assert parse_config(billing(source="stripe"), Path(".")).systems["books"].source == "stripe"
    with pytest.raises(ConfigError, match=r"\[systems.books\] source = 'nope' names no Stripe "
                                          r"source; configured: stripe"):
        parse_config(billing(source="nope"), Path("."))
    with pytest.raises(ConfigError, match=r"\[systems.books\] source = None"):
        parse_config(billing(), Path("."))
    with pytest.raises(ConfigError, match="plays the billing role only, not ledger"):
        parse_config(billing(source="stripe", role="ledger"), Path("."))
    with pytest.raises(ConfigError, match="not an embedded billing system"):
        parse_config(billing(source="stripe") | {"pumps": {"stripe": "books"}}, Path("."))


def test_stripe_books_are_the_billing_records_and_none_is_named_with_the_way_out() -> None:
    engine = make_engine("sqlite://")
    try:
        ports = build_ports(parse_config(billing(source="stripe"), Path(".")), engine)
        records = ports.billing_records()
        assert isinstance(records, StripeBillingRecords)
        assert isinstance(records, BillingRecordsPort)
        assert (records.system, records.source, records.legal_entity) == (
            "books", "stripe", "le_us")
        with pytest.raises(ConfigError, match='connector = "stripe" and source'):
            build_ports(parse_config(data(), Path(".")), engine).billing_records()
    finally:
        engine.dispose()


def test_a_usage_source_reads_meters_of_a_configured_stripe_source() -> None:
    usage = {"sources": ["stripe_meters"], "stripe": {"stripe_meters": "stripe"}}
    assert parse_config(data(usage=usage), Path(".")).usage.stripe == {"stripe_meters": "stripe"}
    with pytest.raises(ConfigError, match=r"\[usage.stripe\] metering is not a usage source"):
        parse_config(data(usage={"sources": [], "stripe": {"metering": "stripe"}}), Path("."))
    with pytest.raises(ConfigError, match="'other', which is not a Stripe source"):
        parse_config(data(usage={"sources": ["m"], "stripe": {"m": "other"}}), Path("."))
