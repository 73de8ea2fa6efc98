"""HubSpot to billing: the reference contract approved in the CRM (the fixture CRM server,
tests/external/hubspot_server.py, NOT HubSpot) reaches the embedded billing platform as
orders, through signed webhooks, the fetcher, the mapper and the hub's quote to cash, on
SQLite and PostgreSQL.

Version 1: 500 SEATS-ANNUAL at 120.00 a seat-year from 2026-01-01; version 2, approved on
2026-05-15: 800 seats and one PREMIUM-ANALYTICS at 24,000.00 a year, co-terminated."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from finsync.api.app import create_app
from finsync.bootstrap import Finance, build_finance, build_webhooks
from finsync.demo.clock import SimClock
from finsync.domain.status import OrderState
from finsync.hub import cpq_status
from finsync.hub.milestone import Milestone
from tests.hubkit import shipped_config
from tests.hubspotkit import (
    AMENDMENT,
    SECRET,
    TOKEN,
    WEBHOOK_PATH,
    WEBHOOK_URL,
    FixtureCrm,
    signed,
    start_fixture_crm,
)
from tests.stripekit import ApiServer

ROUTES = {"commercial_contract.approved": ["billing"], "customer.upserted": ["billing"],
          "invoice.issued": ["ledger"], "payment.applied": ["ledger"],
          "contract.created": ["revrec"], "contract.amended": ["revrec"]}


@pytest.fixture
def crm(tmp_path: Path) -> Iterator[FixtureCrm]:
    yield from start_fixture_crm(tmp_path)


@pytest.fixture
def world(tmp_path: Path, db_url: str, crm: FixtureCrm, monkeypatch: pytest.MonkeyPatch
          ) -> Iterator[tuple[Finance, SimClock, ApiServer]]:
    """The shipped configuration with HubSpot (source `crm`) owning customers and CPQ."""
    monkeypatch.setenv("FINSYNC_DATABASE_URL", db_url)
    monkeypatch.setenv("FINSYNC_TEST_HUBSPOT_TOKEN", TOKEN)
    monkeypatch.setenv("FINSYNC_TEST_HUBSPOT_SECRET", SECRET)
    config = shipped_config(tmp_path)
    section = {"legal_entity": "le_us", "webhook_url": WEBHOOK_URL, "base_url": crm.base_url,
               "access_token_env": "FINSYNC_TEST_HUBSPOT_TOKEN",
               "client_secrets": [{"env": "FINSYNC_TEST_HUBSPOT_SECRET"}]}
    data = {**config.model_dump(mode="json", exclude={"base_dir"}, exclude_none=True),
            "routes": ROUTES, "pumps": {"billing": "billing"},
            "sources": {**config.sources, "crm": "hubspot"}, "hubspot": {"crm": section},
            "ownership": {**config.ownership, "customer": "crm", "commercial": "crm"}}
    config = type(config).model_validate({**data, "base_dir": tmp_path})
    clock = SimClock(datetime(2026, 1, 1, 9, tzinfo=UTC))
    finance = build_finance(config, clock=clock)
    webhooks = build_webhooks(config, finance.hub.engine, clock)
    with ApiServer(create_app(finance.hub, webhooks=webhooks)) as server:
        yield finance, clock, server
    finance.hub.engine.dispose()


def deal_changed(clock: SimClock) -> tuple[bytes, dict[str, str]]:
    """HubSpot's webhook that deal 9001 changed, signed at the simulated time."""
    body = json.dumps([{"eventId": 1, "subscriptionId": 2101, "portalId": 62515,
                        "appId": 54321, "occurredAt": 1, "attemptNumber": 0,
                        "subscriptionType": "deal.propertyChange", "objectId": 9001,
                        "propertyName": "dealstage", "propertyValue": "closedwon",
                        "changeSource": "CRM"}]).encode()
    return body, signed(body, at_ms=int(clock().timestamp() * 1000))


def run(finance: Finance) -> None:
    finance.hub.run_until_idle()
    finance.hub.run_until_idle()  # billing's own events, pumped after its commands


def test_the_deal_approved_in_hubspot_is_ordered_from_billing_version_by_version(
        world: tuple[Finance, SimClock, ApiServer], crm: FixtureCrm) -> None:
    finance, clock, server = world
    assert server.post(WEBHOOK_PATH, *deal_changed(clock))[0] == 200
    run(finance)
    clock.to(datetime(2026, 5, 15, 10, tzinfo=UTC).date())
    crm.apply({k: v for k, v in json.loads(AMENDMENT.read_text()).items() if k != "_about"})
    assert server.post(WEBHOOK_PATH, *deal_changed(clock))[0] == 200
    run(finance)
    status = cpq_status.contract_status(finance.hub.engine, "9001")
    assert status is not None
    assert [(v.cpq_version, v.order_state) for v in status.versions] == [
        (1, OrderState.APPLIED), (2, OrderState.APPLIED)], status
    upgrade = {m.name for m in status.versions[1].milestones}
    assert {Milestone.ORDER_ACCEPTED, Milestone.CONTRACT_ACCEPTED} <= upgrade
    assert not [e for v in status.versions for e in v.exceptions]
    assert finance.hub.exceptions() == []
    assert status.baseline is not None
    assert [(b.line_id, b.quantity) for b in status.baseline.lines] == [("4001", 800),
                                                                       ("4002", 1)]
