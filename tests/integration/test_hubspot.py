"""HubSpot as a CRM/CPQ source, end to end against a real HTTP process: signed webhooks
reach finsync's API, are verified and stored; the fetcher reads the objects they name from
the fixture CRM server (tests/external/hubspot_server.py: HubSpot's CRM v3 response shapes
built from its object reference, NOT HubSpot) with the official `hubspot-api-client`,
stores snapshots, and the hub maps and accepts `customer.upserted` and
`commercial_contract.approved`, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from finsync.api.app import create_app
from finsync.bootstrap import build_hub, build_webhooks
from finsync.cli.main import app
from finsync.config import FinsyncConfig
from finsync.domain.events import EventType
from finsync.domain.status import EventStatus, RawStatus
from finsync.hub.service import Hub
from finsync.storage.schema import events, raw_events
from tests.clikit import auth_section
from tests.hubspotkit import (
    AMENDMENT,
    OLD_SECRET,
    SECRET,
    TOKEN,
    WEBHOOK,
    WEBHOOK_PATH,
    WEBHOOK_URL,
    FixtureCrm,
    hubspot_config,
    objects,
    signed,
    start_fixture_crm,
)
from tests.stripekit import ApiServer


@pytest.fixture
def crm(tmp_path: Path) -> Iterator[FixtureCrm]:
    yield from start_fixture_crm(tmp_path)


@pytest.fixture
def config(db_url: str, crm: FixtureCrm, monkeypatch: pytest.MonkeyPatch) -> FinsyncConfig:
    monkeypatch.setenv("FINSYNC_TEST_HUBSPOT_TOKEN", TOKEN)
    monkeypatch.setenv("FINSYNC_TEST_HUBSPOT_SECRET", SECRET)
    monkeypatch.setenv("FINSYNC_TEST_HUBSPOT_SECRET_OLD", OLD_SECRET)
    return hubspot_config(db_url, crm.base_url)


@pytest.fixture
def served(config: FinsyncConfig, engine: Engine) -> Iterator[tuple[Hub, ApiServer]]:
    hub = build_hub(config, engine=engine)
    with ApiServer(create_app(hub, webhooks=build_webhooks(config, engine))) as server:
        yield hub, server


def send(server: ApiServer, items: list[dict[str, Any]]) -> tuple[int, Any]:
    body = json.dumps(items).encode()
    return server.post(WEBHOOK_PATH, body, signed(body))


def accepted(hub: Hub) -> list[tuple[str, str, int | None, dict[str, Any]]]:
    with hub.engine.connect() as conn:
        rows = conn.execute(select(events.c.type, events.c.aggregate_id,
                                   events.c.aggregate_version, events.c.payload)
                            .where(events.c.status == EventStatus.ACCEPTED)
                            .order_by(events.c.position)).all()
    return [(str(t), str(i), v, json.loads(p)) for t, i, v, p in rows]


def deal_event(deal_id: int) -> dict[str, Any]:
    return {"eventId": deal_id, "subscriptionId": 2101, "portalId": 62515, "appId": 54321,
            "occurredAt": 1778837400000, "subscriptionType": "deal.propertyChange",
            "attemptNumber": 0, "objectId": deal_id, "propertyName": "dealstage",
            "propertyValue": "closedwon", "changeSource": "CRM"}


def test_signed_webhook_to_accepted_contract_and_customer_then_the_upgrade(
        served: tuple[Hub, ApiServer], crm: FixtureCrm) -> None:
    hub, server = served
    body = WEBHOOK.read_bytes()
    code, answer = server.post(WEBHOOK_PATH, body, signed(body))
    assert (code, answer["received"]) == (200, True)
    hub.run_until_settled(5)
    assert hub.exceptions() == []
    (customer_type, customer_id, customer_v, customer), (contract_type, deal_id, deal_v,
                                                          contract) = accepted(hub)
    assert (customer_type, customer_id, customer_v) == (EventType.CUSTOMER_UPSERTED, "7001", 1)
    assert customer["customer"]["name"] == "Acme Analytics Inc."
    assert (contract_type, deal_id, deal_v) == (EventType.COMMERCIAL_CONTRACT_APPROVED,
                                                "9001", 1)
    (seats,) = contract["commercial_contract"]["lines"]
    assert (seats["product_code"], seats["quantity"]) == ("SEATS-ANNUAL", 500)

    # HubSpot retries the webhook, and another one names the same objects: the fetcher reads
    # the same states, which are the same versions: duplicates, nothing new.
    duplicates = hub.status()["duplicates_ignored"]
    assert server.post(WEBHOOK_PATH, body, signed(body))[0] == 200
    assert send(server, [deal_event(9001)])[0] == 200
    hub.run_until_settled(5)
    assert len(accepted(hub)) == 2 and hub.exceptions() == []
    assert hub.status()["duplicates_ignored"] > duplicates

    # The upgrade is approved in the CRM (800 seats, premium analytics): version 2.
    crm.apply({k: v for k, v in json.loads(AMENDMENT.read_text()).items() if k != "_about"})
    line_item_added = {"eventId": 300, "subscriptionId": 2104, "portalId": 62515,
                       "appId": 54321, "occurredAt": 1778837500000,
                       "subscriptionType": "line_item.creation", "attemptNumber": 0,
                       "objectId": 4002, "changeSource": "CRM"}
    assert send(server, [line_item_added])[0] == 200
    hub.run_until_settled(5)
    assert hub.exceptions() == []
    types = [(t, i, v) for t, i, v, _ in accepted(hub)]
    assert types[-1] == (EventType.COMMERCIAL_CONTRACT_APPROVED, "9001", 2)
    amended = accepted(hub)[-1][3]["commercial_contract"]
    assert amended["quote_id"] == "hubspot-deal-9001-v2" and amended["kind"] == "amendment"
    assert [(li["product_code"], li["quantity"]) for li in amended["lines"]] == [
        ("SEATS-ANNUAL", 800), ("PREMIUM-ANALYTICS", 1)]
    # The company did not change: still version 1, not re-versioned by the deal's fetch.
    assert [v for t, _, v in types if t == EventType.CUSTOMER_UPSERTED] == [1]


def test_refused_webhooks_are_recorded_and_rotation_accepts_the_old_secret(
        served: tuple[Hub, ApiServer]) -> None:
    hub, server = served
    body = WEBHOOK.read_bytes()
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    stale_ms = now_ms - int(timedelta(minutes=6).total_seconds() * 1000)
    tampered = body.replace(b"9001", b"9002")
    refusals = {
        "signature_missing": (body, {}),
        "signature_malformed": (body, {"X-HubSpot-Signature-v3": "not base64!",
                                       "X-HubSpot-Request-Timestamp": str(now_ms)}),
        "signature_mismatch": (body, signed(body, "an-attackers-secret")),
        "timestamp_outside_tolerance": (body, signed(body, at_ms=stale_ms)),
    }
    for code, (sent, headers) in refusals.items():
        status, answer = server.post(WEBHOOK_PATH, sent, headers)
        assert (status, answer["error"]["code"]) == (400, code)
    status, answer = server.post(WEBHOOK_PATH, tampered, signed(body))
    assert (status, answer["error"]["code"]) == (400, "signature_mismatch")
    recorded = hub.exceptions(exception_class="ownership_violation")
    assert sorted(e["detail"] for e in recorded) == sorted(refusals)
    assert hub.status()["raw_events"] == {RawStatus.REJECTED: 5}

    status, answer = server.post(WEBHOOK_PATH, body, signed(body, OLD_SECRET))
    assert (status, answer["received"]) == (200, True)
    status, _ = server.post("/v1/webhooks/hubspot/other", body, signed(body))
    assert status == 404
    # A HubSpot source is taken at its own scheme's endpoint only.
    for other_scheme in ("stripe", "cpq"):
        status, _ = server.post(f"/v1/webhooks/{other_scheme}/crm", body, signed(body))
        assert status == 404
    # Signed for another URL (a replay captured elsewhere): refused.
    status, answer = server.post(WEBHOOK_PATH, body,
                                 signed(body, uri="https://evil.example/hook"))
    assert (status, answer["error"]["code"]) == (400, "signature_mismatch")


def test_a_hubspot_outage_loses_nothing_and_is_read_at_the_next_run(
        served: tuple[Hub, ApiServer], crm: FixtureCrm) -> None:
    hub, server = served
    assert send(server, [deal_event(9001)])[0] == 200
    crm.outage(503, 1)
    hub.run_until_settled(1)
    assert accepted(hub) == []  # the deal waits in the fetch queue
    hub.run_until_settled(1)
    assert [(t, v) for t, _, v, _ in accepted(hub)] == [
        (EventType.CUSTOMER_UPSERTED, 1), (EventType.COMMERCIAL_CONTRACT_APPROVED, 1)]


def test_a_deal_not_yet_approved_orders_nothing(served: tuple[Hub, ApiServer]) -> None:
    hub, server = served
    assert send(server, [deal_event(9002)])[0] == 200
    hub.run_until_settled(1)
    assert accepted(hub) == [] and hub.exceptions() == []
    with hub.engine.connect() as conn:
        stored = conn.execute(select(raw_events.c.id)).all()
    assert len(stored) == 1  # the webhook itself, kept as received


def test_a_deal_that_cannot_be_mapped_is_kept_as_a_mapping_error(
        served: tuple[Hub, ApiServer], crm: FixtureCrm) -> None:
    hub, server = served
    broken = objects()["line_items"]["4001"]
    broken["properties"]["recurringbillingfrequency"] = "per_six_months"
    crm.put("line_items", broken)
    assert send(server, [deal_event(9001)])[0] == 200
    hub.run_until_settled(1)
    (exception,) = [e for e in hub.exceptions() if e["class"] == "mapping_error"]
    assert exception["detail"] == "unsupported_frequency"
    # The customer still maps; the contract waits for the CRM to be corrected.
    assert [t for t, _, _, _ in accepted(hub)] == [EventType.CUSTOMER_UPSERTED]


def test_a_deleted_company_or_a_misshapen_answer_is_one_objects_mapping_error(
        served: tuple[Hub, ApiServer], crm: FixtureCrm) -> None:
    hub, server = served
    crm_objects = objects()
    deal = crm_objects["deals"]["9001"]
    deal["associations"]["companies"] = [{"id": "7999", "type": "deal_to_company"}]
    crm.put("deals", deal)  # its company is gone (404)
    odd = crm_objects["line_items"]["4001"] | {"id": "4003", "properties": "not an object"}
    crm.put("line_items", odd)
    other = crm_objects["deals"]["9002"]
    other["properties"]["dealstage"] = "closedwon"
    other["associations"]["line_items"] = [{"id": "4003", "type": "deal_to_line_item"}]
    crm.put("deals", other)
    assert send(server, [deal_event(9001), deal_event(9002)])[0] == 200
    hub.run_until_settled(1)
    errors = {e["detail"] for e in hub.exceptions() if e["class"] == "mapping_error"}
    assert errors == {"invalid_snapshot"}
    assert len([e for e in hub.exceptions() if e["class"] == "mapping_error"]) == 2
    assert accepted(hub)[0][:3] == (EventType.CUSTOMER_UPSERTED, "7001", 1)  # 9002's company


def test_finsync_hubspot_fetch_reads_what_the_webhooks_named(
        config: FinsyncConfig, crm: FixtureCrm, engine: Engine, db_url: str,
        tmp_path: Path) -> None:
    hub = build_hub(config, engine=engine)
    webhooks = build_webhooks(config, engine)
    body = json.dumps([deal_event(9001)]).encode()
    webhooks["crm"].receive(body, {k.lower(): v for k, v in signed(body).items()})
    toml = tmp_path / "finsync.toml"
    toml.write_text(f'''
[hub]
database_url = "{db_url}"
[ownership]
customer = "crm"
commercial = "crm"
catalog = "billing"
subscription = "billing"
payments = "billing"
usage = "billing"
tax = "tax"
ledger = "ledger"
revenue = "revrec"
[sources]
crm = "hubspot"
[hubspot.crm]
legal_entity = "le_us"
webhook_url = "{WEBHOOK_URL}"
base_url = "{crm.base_url}"
access_token_env = "FINSYNC_TEST_HUBSPOT_TOKEN"
[[hubspot.crm.client_secrets]]
env = "FINSYNC_TEST_HUBSPOT_SECRET"
''' + auth_section())
    crm.outage(503, 1)
    failed = CliRunner().invoke(app, ["hubspot", "fetch", "--json", "-c", str(toml)])
    assert failed.exit_code != 0  # raised, not logged: the operator sees HubSpot is down
    result = CliRunner().invoke(app, ["hubspot", "fetch", "--run", "--json", "-c", str(toml)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["fetch"] == {"read": 1, "sent": 2, "skipped": 0} and data["waiting"] == 0
    assert data["run"]["outcomes"]["accepted"] == 2  # the customer and the contract
    assert [t for t, _, _, _ in accepted(hub)] == [EventType.CUSTOMER_UPSERTED,
                                                   EventType.COMMERCIAL_CONTRACT_APPROVED]


def test_a_read_hubspot_refuses_is_kept_as_the_deals_mapping_error_then_read_again(
        served: tuple[Hub, ApiServer], crm: FixtureCrm) -> None:
    hub, server = served
    crm_objects = objects()
    deal = crm_objects["deals"]["9001"]
    # A line item deleted while the deal is read: the batch read does not return it.
    deal["associations"]["line_items"].append({"id": "4999", "type": "deal_to_line_item"})
    crm.put("deals", deal)
    other = crm_objects["deals"]["9002"]
    other["properties"]["dealstage"] = "closedwon"
    other["associations"]["line_items"] = [{"id": "4001", "type": "deal_to_line_item"}]
    other["associations"]["quotes"] = [{"id": "3999", "type": "deal_to_quote"}]  # 404
    crm.put("deals", other)
    # Deal 9404 is gone (404) before it is read: nothing of it is left to order.
    assert send(server, [deal_event(9001), deal_event(9002), deal_event(9404)])[0] == 200
    hub.run_until_settled(1)
    refused = [e for e in hub.exceptions() if e["class"] == "mapping_error"]
    assert [(e["detail"], e["objects"][0]) for e in refused] == [
        ("fetch_failed", "deal:9001"), ("fetch_failed", "deal:9002")]
    texts = " ".join(str(e["summary"]) for e in refused)
    assert "line items ['4999']" in texts and "quotes/3999 (404)" in texts
    assert accepted(hub) == []  # approved, not ordered: finance sees why
    with hub.engine.connect() as conn:
        stored = conn.execute(select(raw_events.c.id)).all()
    assert len(stored) == 3  # the webhook and the two failed reads, nothing of 9404

    # The CRM is corrected: the next read of the deal is numbered and ordered as usual.
    crm.put("deals", objects()["deals"]["9001"])
    assert send(server, [deal_event(9001)])[0] == 200
    hub.run_until_settled(5)
    assert [(t, i, v) for t, i, v, _ in accepted(hub)] == [
        (EventType.CUSTOMER_UPSERTED, "7001", 1),
        (EventType.COMMERCIAL_CONTRACT_APPROVED, "9001", 1)]
    # The failed reads' exceptions stay open until finance resolves them (they were kept).
    assert len(hub.exceptions(exception_class="mapping_error")) == 2


def test_a_rate_limit_partway_through_a_batch_leaves_no_version_unsent(
        served: tuple[Hub, ApiServer], crm: FixtureCrm) -> None:
    hub, server = served
    other = objects()["deals"]["9002"]
    other["properties"]["dealstage"] = "closedwon"
    other["associations"]["line_items"] = [{"id": "4001", "type": "deal_to_line_item"}]
    crm.put("deals", other)
    # One batch reads deal 9001, then deal 9002, which HubSpot answers with a 429.
    crm.outage(429, 1, path="/crm/v3/objects/deals/9002")
    assert send(server, [deal_event(9001), deal_event(9002)])[0] == 200
    hub.run_until_settled(1)
    # 9001's version 1 was numbered, so it was sent: it is not left for a later batch.
    assert [(t, i, v) for t, i, v, _ in accepted(hub)] == [
        (EventType.CUSTOMER_UPSERTED, "7001", 1),
        (EventType.COMMERCIAL_CONTRACT_APPROVED, "9001", 1)]

    # 9001 changes before the next run (the upgrade): version 2 follows version 1, applied.
    crm.apply({k: v for k, v in json.loads(AMENDMENT.read_text()).items() if k != "_about"})
    assert send(server, [deal_event(9001)])[0] == 200
    hub.run_until_settled(5)
    assert hub.exceptions() == []
    contracts = [(i, v) for t, i, v, _ in accepted(hub)
                 if t == EventType.COMMERCIAL_CONTRACT_APPROVED]
    assert sorted(contracts) == [("9001", 1), ("9001", 2), ("9002", 1)]
