"""The commercial layer's routes: CPQ versions to billing; customers to billing only when
billing does not own the customer master (an event never returns to its domain's owner)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from finsync.config import DEFAULT_CONFIG, parse_config
from finsync.domain.events import EventType


def _settings(ownership: dict[str, str] | None = None) -> dict[EventType, tuple[str, ...]]:
    data = tomllib.loads(DEFAULT_CONFIG.read_text())
    data["ownership"] = {**data["ownership"], **(ownership or {})}
    return dict(parse_config(data, Path(".")).hub_settings().routes)


def test_shipped_routes_order_cpq_versions_from_billing() -> None:
    assert _settings()[EventType.COMMERCIAL_CONTRACT_APPROVED] == ("billing",)


def test_billings_own_customers_never_go_back_to_it() -> None:
    assert _settings()[EventType.CUSTOMER_UPSERTED] == ()


def test_customers_of_a_crm_go_to_billing() -> None:
    assert _settings({"customer": "crm"})[EventType.CUSTOMER_UPSERTED] == ("billing",)
