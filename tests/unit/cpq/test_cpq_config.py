"""`[sources]` kinds "cpq" and "salesforce_cpq" and their `[cpq_sources.<name>]`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from finsync.bootstrap import build_mappers, cpq_document_settings, salesforce_settings
from finsync.config import ConfigError, FinsyncConfig, parse_config
from finsync.domain.catalog import BillingFrequency
from finsync.domain.commercial import ProrationTerms
from finsync.domain.events import BusinessDomain


def config(tmp_path: Path, sources: dict[str, str], sections: dict[str, Any]
           ) -> FinsyncConfig:
    return parse_config({"ownership": {d.value: "billing" for d in BusinessDomain},
                         "sources": sources, "cpq_sources": sections}, tmp_path)


def refused(tmp_path: Path, sources: dict[str, str], sections: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as error:
        config(tmp_path, sources, sections)
    return str(error.value)


def test_cpq_sources_get_their_mappers_and_settings(tmp_path: Path) -> None:
    made = config(tmp_path, {"crm": "cpq", "sfdc": "salesforce_cpq"}, {
        "crm": {}, "sfdc": {"legal_entity": "le_eu", "currency": "EUR",
                            "billing_frequency": "annual", "proration": "next_invoice",
                            "lines_max": 50}})
    assert build_mappers(made).knows("crm") and build_mappers(made).knows("sfdc")
    assert cpq_document_settings(made, "crm").legal_entity is None
    sfdc = salesforce_settings(made, "sfdc")
    assert (sfdc.legal_entity, sfdc.currency, sfdc.billing_frequency, sfdc.proration,
            sfdc.cpq_limits.lines_max) == ("le_eu", "EUR", BillingFrequency.ANNUAL,
                                           ProrationTerms.NEXT_INVOICE, 50)


def test_a_cpq_source_needs_its_section_and_a_section_its_source(tmp_path: Path) -> None:
    assert "[cpq_sources.crm]" in refused(tmp_path, {"crm": "cpq"}, {})
    assert "not a source of kind" in refused(tmp_path, {}, {"crm": {}})


def test_a_salesforce_source_needs_a_legal_entity_and_a_known_currency(
        tmp_path: Path) -> None:
    assert "legal_entity" in refused(tmp_path, {"sfdc": "salesforce_cpq"}, {"sfdc": {}})
    assert "currency" in refused(tmp_path, {"sfdc": "salesforce_cpq"},
                                 {"sfdc": {"legal_entity": "le_us", "currency": "XXQ"}})


def test_a_signing_secret_is_never_written_in_clear(tmp_path: Path) -> None:
    clear = {"crm": {"signing_secrets": [{"env": "X"}], "signing_secret": "s3cr3t-value"}}
    assert "in clear" in refused(tmp_path, {"crm": "cpq"}, clear)
    both = {"crm": {"signing_secrets": [{"env": "X", "file": "y"}]}}
    assert "exactly one of env or file" in refused(tmp_path, {"crm": "cpq"}, both)
