"""`[sources] <name> = "hubspot"` and its `[hubspot.<name>]` section."""

from __future__ import annotations

from typing import Any

import pytest

from finsync.bootstrap import hubspot_settings
from finsync.config import ConfigError, parse_config
from finsync.domain.commercial import ProrationTerms
from finsync.domain.events import BusinessDomain
from tests.hubspotkit import ROOT, WEBHOOK_URL


def config_data(**section: Any) -> dict[str, Any]:
    return {"ownership": {d.value: "billing" for d in BusinessDomain},
            "sources": {"crm": "hubspot"},
            "hubspot": {"crm": {"legal_entity": "le_us", "webhook_url": WEBHOOK_URL,
                                **section}}}


def test_a_hubspot_source_reads_its_section() -> None:
    config = parse_config(config_data(approved_stages=["closedwon", "contractsigned"],
                                      proration="next_invoice", default_currency="eur"),
                          ROOT)
    settings = hubspot_settings(config, "crm")
    assert settings.approved_stages == frozenset({"closedwon", "contractsigned"})
    assert settings.proration is ProrationTerms.NEXT_INVOICE
    assert settings.default_currency == "EUR"
    section = config.hubspot["crm"]
    assert [s.env for s in section.client_secrets] == ["HUBSPOT_CLIENT_SECRET"]
    assert section.access_token_env == "HUBSPOT_ACCESS_TOKEN"
    assert section.tolerance_s == 300  # HubSpot's five minutes


@pytest.mark.parametrize(("data", "message"), [
    ({"ownership": {d.value: "billing" for d in BusinessDomain},
      "sources": {"crm": "hubspot"}}, "without [hubspot.crm]"),
    ({**config_data(), "sources": {"crm": "canonical"}}, "not a source of kind"),
    (config_data(webhook_url="ftp://x.example/hook"), "webhook_url"),
    (config_data(access_token="pat-na1-abc"), "holds a secret in clear"),
    (config_data(client_secrets=[]), "client_secrets"),
    (config_data(tolerance_s=86_400), "tolerance_s"),
    (config_data(default_currency="XYZ"), "default_currency"),
])
def test_a_bad_hubspot_configuration_is_refused(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(data, ROOT)
    assert message in str(refused.value)
