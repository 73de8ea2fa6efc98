"""The signed CPQ sources end to end through the HTTP API: a request signed with
`Finsync-Signature` is stored, the pipeline maps it, and the hub accepts the version as
`commercial_contract.approved` (SQLite and PostgreSQL); refused requests are recorded as
the Stripe webhook's are, and never mapped."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from finsync.api.app import create_app
from finsync.auth.principal import events_write
from finsync.bootstrap import build_hub, build_webhooks, load_cpq_file
from finsync.config import ConfigError, FinsyncConfig, parse_config
from finsync.connectors.cpq import document, signature
from finsync.domain.errors import ExceptionClass
from finsync.domain.events import BusinessDomain, EventType
from finsync.domain.limits import InputLimits
from finsync.domain.status import EventStatus, RawStatus
from finsync.hub.service import Hub
from finsync.storage.schema import events, exceptions, raw_events
from tests import authkit
from tests.unit.cpq.cpqkit import APPROVED_AT, contract, customer, upgrade

SECRET, OLD_SECRET = "cpq-integration-current", "cpq-integration-previous"
FIXTURES = Path(__file__).parents[1] / "fixtures" / "cpq" / "salesforce"


def configured(tmp_path: Path, commercial_owner: str) -> FinsyncConfig:
    """Sources `cpq` (finsync's CPQ JSON) and `sfdc` (Salesforce CPQ); one of them owns
    the commercial domain (DESIGN §1: one system of record per domain)."""
    (tmp_path / "old-secret").write_text(OLD_SECRET + "\n")
    ownership = {d.value: "billing" for d in BusinessDomain}
    ownership |= {"commercial": commercial_owner, "customer": "cpq"}
    secrets = [{"env": "T_CPQ_SECRET"},
               {"file": "old-secret", "not_after": datetime(2100, 1, 1, tzinfo=UTC)}]
    return parse_config({
        "ownership": ownership,
        "sources": {"cpq": "cpq", "sfdc": "salesforce_cpq"},
        "cpq_sources": {"cpq": {"legal_entity": "le_us", "signing_secrets": secrets},
                        "sfdc": {"legal_entity": "le_us",
                                 "signing_secrets": [{"env": "T_CPQ_SECRET"}]}},
    }, tmp_path)


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_CPQ_SECRET", SECRET)


@contextmanager
def serving(config: FinsyncConfig, engine: Engine) -> Iterator[tuple[Hub, TestClient]]:
    hub = build_hub(config, engine=engine)
    app = create_app(hub, webhooks=build_webhooks(config, engine))
    with TestClient(app) as client:
        yield hub, client


@pytest.fixture
def served(engine: Engine, tmp_path: Path, secret: None) -> Iterator[tuple[Hub, TestClient]]:
    with serving(configured(tmp_path, "cpq"), engine) as pair:
        yield pair


def signed(body: bytes, secret: str = SECRET, at: datetime | None = None) -> dict[str, str]:
    stamp = int((at or datetime.now(UTC)).timestamp())
    return {"Finsync-Signature": signature.header_for(secret, stamp, body),
            "Content-Type": "application/json"}


def accepted(hub: Hub) -> list[tuple[str, str, int, str]]:
    with hub.engine.connect() as conn:
        rows = conn.execute(select(events.c.type, events.c.aggregate_id,
                                   events.c.aggregate_version, events.c.status)
                            .order_by(events.c.position)).all()
    return [(r.type, r.aggregate_id, r.aggregate_version, r.status) for r in rows]


def test_a_signed_contract_version_is_stored_mapped_and_accepted(
        served: tuple[Hub, TestClient]) -> None:
    hub, client = served
    for value in (customer(), contract(), upgrade()):
        body = document.encode(value, APPROVED_AT)
        response = client.post("/v1/webhooks/cpq/cpq", content=body, headers=signed(body))
        assert response.status_code == 202, response.text
    resent = document.encode(upgrade(), APPROVED_AT)  # a resend signed with the old secret
    again = client.post("/v1/webhooks/cpq/cpq", content=resent, headers=signed(resent, OLD_SECRET))
    assert again.status_code == 202  # stored again; the hub keeps one version 2
    hub.run_until_idle()
    contract_type = EventType.COMMERCIAL_CONTRACT_APPROVED.value
    assert accepted(hub) == [
        (EventType.CUSTOMER_UPSERTED.value, "acc-acme", 1, EventStatus.ACCEPTED.value),
        (contract_type, "ct-acme", 1, EventStatus.ACCEPTED.value),
        (contract_type, "ct-acme", 2, EventStatus.ACCEPTED.value)]
    with hub.engine.connect() as conn:
        stored = conn.execute(select(raw_events.c.headers, raw_events.c.status)).all()
    assert all("finsync-signature" in row.headers for row in stored)  # kept for audit
    assert {row.status for row in stored} == {RawStatus.MAPPED.value}


def test_a_salesforce_relays_signed_bundle_is_accepted_as_the_quotes_version(
        engine: Engine, tmp_path: Path, secret: None) -> None:
    with serving(configured(tmp_path, "sfdc"), engine) as (hub, client):
        _send_salesforce(hub, client)


def _send_salesforce(hub: Hub, client: TestClient) -> None:
    for name in ("quote_approved_cdc.json", "amendment_platform_event.json",
                 "amendment_order_cdc.json"):  # the Order is the same version again
        body = (FIXTURES / name).read_bytes()
        response = client.post("/v1/webhooks/cpq/sfdc", content=body, headers=signed(body))
        assert response.status_code == 202, response.text
    hub.run_until_idle()
    original = "a0x5g000000QtE1AAK"
    contract_type = EventType.COMMERCIAL_CONTRACT_APPROVED.value
    assert accepted(hub) == [(contract_type, original, 1, EventStatus.ACCEPTED.value),
                             (contract_type, original, 2, EventStatus.ACCEPTED.value)]


@pytest.mark.parametrize("headers, code", [
    ({}, "signature_missing"),
    ({"Finsync-Signature": "t=1,v1=00"}, "signature_mismatch"),
])
def test_a_refused_request_is_recorded_and_never_mapped(
        served: tuple[Hub, TestClient], headers: dict[str, str], code: str) -> None:
    hub, client = served
    body = document.encode(contract(), APPROVED_AT)
    response = client.post("/v1/webhooks/cpq/cpq", content=body, headers=headers)
    assert (response.status_code, response.json()["error"]["code"]) == (400, code)
    hub.run_until_idle()
    assert accepted(hub) == []
    with hub.engine.connect() as conn:
        opened = conn.execute(select(exceptions.c["class"])).scalars().all()
        kept = conn.execute(select(raw_events.c.status)).all()
    assert opened == [ExceptionClass.OWNERSHIP_VIOLATION.value]
    assert [r.status for r in kept] == [RawStatus.REJECTED.value]


def test_an_expired_signature_is_refused(served: tuple[Hub, TestClient]) -> None:
    _, client = served
    body = document.encode(contract(), APPROVED_AT)
    stale = signed(body, at=datetime(2026, 1, 1, tzinfo=UTC))
    response = client.post("/v1/webhooks/cpq/cpq", content=body, headers=stale)
    assert response.json()["error"]["code"] == "timestamp_outside_tolerance"


def test_a_cpq_source_is_taken_at_its_own_endpoint_only(
        served: tuple[Hub, TestClient]) -> None:
    _, client = served
    body = document.encode(contract(), APPROVED_AT)
    at_stripe = client.post("/v1/webhooks/stripe/cpq", content=body, headers=signed(body))
    assert at_stripe.json()["error"]["code"] == "unknown_source"
    unknown = client.post("/v1/webhooks/cpq/nobody", content=body, headers=signed(body))
    assert unknown.json()["error"]["code"] == "unknown_source"


def test_a_cpq_source_refuses_unsigned_events_at_the_sources_endpoint(
        served: tuple[Hub, TestClient]) -> None:
    hub, client = served
    body = document.encode(contract(), APPROVED_AT)
    token = authkit.bearer(authkit.issue(hub.engine, [events_write("cpq")]))
    response = client.post("/v1/sources/cpq/events", content=body, headers=token)
    error = response.json()["error"]
    assert (response.status_code, error["code"]) == (400, "signature_missing")
    assert "/v1/webhooks/cpq/cpq" in error["message"]


def test_a_body_over_the_limit_is_refused_unread_and_not_stored(
        served: tuple[Hub, TestClient]) -> None:
    hub, client = served
    body = b"x" * (InputLimits().body_max_bytes + 1)
    response = client.post("/v1/webhooks/cpq/cpq", content=body, headers=signed(body))
    assert (response.status_code, response.json()["error"]["code"]) == (413, "body_too_large")
    with hub.engine.connect() as conn:
        assert conn.execute(select(raw_events.c.id)).all() == []


def test_a_dropped_file_is_stored_one_raw_event_per_version_and_accepted(
        engine: Engine, tmp_path: Path, secret: None) -> None:
    config = configured(tmp_path, "cpq")
    lines = [document.encode(v, APPROVED_AT) for v in (customer(), upgrade(), contract())]
    path = tmp_path / "crm.jsonl"
    path.write_bytes(b"\n".join(lines))  # version 2 before version 1: the hub orders them
    drop = load_cpq_file(config, "cpq", path, datetime.now(UTC).date())
    assert drop.ok
    hub = build_hub(config, engine=engine)
    assert hub.store("cpq", [v.body for v in drop.versions], {"user-agent": "test"}) == 3
    hub.run_until_idle()
    contract_type = EventType.COMMERCIAL_CONTRACT_APPROVED.value
    assert sorted(accepted(hub)) == [
        (contract_type, "ct-acme", 1, EventStatus.ACCEPTED.value),
        (contract_type, "ct-acme", 2, EventStatus.ACCEPTED.value),
        (EventType.CUSTOMER_UPSERTED.value, "acc-acme", 1, EventStatus.ACCEPTED.value)]
    with pytest.raises(ConfigError):
        load_cpq_file(configured(tmp_path, "sfdc"), "sfdc", path, datetime.now(UTC).date())
