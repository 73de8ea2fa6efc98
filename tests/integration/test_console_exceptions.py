"""The console's exception queue over HTTP, on both databases: the queue's figures are the
service's, sorted by money at stake and filtered; the detail is redacted by scope; an
exception is worked from open to resolved with a refused self-approval and a second
person's approval, each step audited with its principal; bulk replay runs as a job; a
two-person request is decided from the approvals inbox."""

from __future__ import annotations

import json
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from finsync.api.app import create_app
from finsync.auth.principal import (
    AUDIT_READ,
    EXCEPTIONS_ACT,
    EXCEPTIONS_APPROVE,
    FINANCE_READ,
    PERIODS_MANAGE,
    PII_READ,
)
from finsync.bootstrap import (
    Finance,
    build_billing_service,
    build_finance,
    build_period_control,
)
from finsync.cli.main import app as cli
from finsync.config import DEFAULT_CONFIG, FinsyncConfig, parse_config
from finsync.connectors.ports import DeliveryContext
from finsync.demo.clock import SimClock
from finsync.domain.catalog import BillingFrequency
from finsync.domain.contract import ContractLine, SubscriptionContract
from finsync.domain.money import Money
from finsync.domain.party import CustomerAccount
from finsync.storage.raw_log import RawIn
from finsync.systems.billing.handler import RegisterCustomer
from finsync.systems.billing.payment import PayInvoice
from finsync.systems.billing.service import BillingService
from finsync.systems.billing.subscription import CreateSubscription
from finsync.views.services import build_services
from tests import authkit
from tests.builders import envelope, payment_doc
from tests.ledgerkit import invoice
from tests.people import ALICE

READER = (FINANCE_READ,)
CLERK = (FINANCE_READ, EXCEPTIONS_ACT)
APPROVER = (FINANCE_READ, EXCEPTIONS_ACT, EXCEPTIONS_APPROVE, PERIODS_MANAGE, AUDIT_READ,
            PII_READ)


@dataclass
class World:
    finance: Finance
    billing: BillingService
    clock: SimClock
    config: FinsyncConfig
    client: TestClient

    def as_(self, principal: str, scopes: tuple[str, ...]) -> dict[str, str]:
        return authkit.bearer(authkit.issue(self.finance.hub.engine, scopes,
                                            principal=principal))


@pytest.fixture
def world(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("FINSYNC_DATABASE_URL", db_url)
    config = parse_config(tomllib.loads(DEFAULT_CONFIG.read_text()), tmp_path)
    clock = SimClock(datetime(2026, 1, 1, tzinfo=UTC))
    finance = build_finance(config, clock=clock)
    app = create_app(finance.hub, audit=finance.audit, services=build_services(config, finance))
    with TestClient(app) as client:
        yield World(finance, build_billing_service(config, finance.hub.engine, clock), clock,
                    config, client)
    finance.hub.engine.dispose()


def _late_payment(w: World, seats: int) -> int:
    """A payment of January received after January closed: one closed_period exception
    with `seats` x 120.00 USD at stake."""
    w.billing.execute(RegisterCustomer(CustomerAccount("cus_t", "T", "le_us", "USD", "US")))
    start, end = date(2026, 1, 1), date(2027, 1, 1)
    line = ContractLine("ln_seats", "prod_platform_seat", "price_seat_annual", seats,
                        Money.of("120.00", "USD"), start, end)
    w.billing.execute(CreateSubscription(SubscriptionContract(
        "con_t", "cus_t", "le_us", "USD", start, end, BillingFrequency.ANNUAL, (line,))))
    invoice_id = w.billing.invoices()[0].id
    w.finance.hub.run_until_idle()
    w.clock.to(date(2026, 2, 1))
    w.finance.close.close("le_us", "2026-01", "controller")
    w.clock.to(date(2026, 2, 3))
    w.billing.execute(PayInvoice("pay_t", invoice_id, Money.of(f"{seats * 120}.00", "USD"),
                                 date(2026, 1, 30)))
    w.finance.hub.run_until_idle()
    [row] = w.finance.triage.listing(exception_class="closed_period")
    return int(row["id"])


def _stray_break(w: World) -> None:
    """An invoice the ERP holds and billing does not: a 250.00 USD reconciliation break."""
    erp = w.finance.ports.ledger()
    erp.post_invoice(invoice("inv_stray", ["250.00"]), DeliveryContext("manual-1", "m", "m"))
    w.finance.recon.run(date(2026, 1, 31))


def _ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def _refused(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def test_the_queue_is_sorted_by_money_at_stake_and_its_figures_are_the_services(
        world: World) -> None:
    _stray_break(world)  # 250.00 USD
    late = _late_payment(world, seats=50)  # 6000.00 USD at stake
    reader = world.as_("auditor", READER)
    shown = _ok(world.client.get("/v1/exceptions/queue", headers=reader))
    assert [(e["class"], e["at_stake"], e["entity"]) for e in shown["exceptions"]] == [
        ("closed_period", {"amount": "6000.00", "currency": "USD"}, "le_us"),
        ("reconciliation_break", {"amount": "250.00", "currency": "USD"}, "le_us")]
    assert shown["exceptions"][0]["id"] == late
    # The same figures as the service behind `finsync exceptions list` / GET /v1/exceptions.
    listing = world.finance.hub.exception_listing("unresolved").as_json()
    assert shown["count"] == listing["count"] == 2
    assert {a["currency"]: a["amount"] for a in shown["at_stake"]} == listing["at_stake"] \
        == {"USD": "6250.00"}


def test_the_cli_shows_the_same_queue(world: World, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    _stray_break(world)
    _late_payment(world, seats=50)
    config = tmp_path / "finsync.toml"
    config.write_text(DEFAULT_CONFIG.read_text())
    monkeypatch.setenv("FINSYNC_TOKEN", authkit.issue(world.finance.hub.engine, READER,
                                                      principal="auditor"))
    done = CliRunner().invoke(cli, ["exceptions", "queue", "--entity", "le_us",
                                    "--amount-min", "100", "--json", "--config", str(config)])
    assert done.exit_code == 0, done.output
    printed = json.loads(done.output)
    shown = _ok(world.client.get("/v1/exceptions/queue?entity=le_us&amount_min=100",
                                 headers=world.as_("auditor", READER)))
    for key in ("count", "at_stake", "filter"):
        assert printed[key] == shown[key]
    assert [e["id"] for e in printed["exceptions"]] == [e["id"] for e in shown["exceptions"]]


@pytest.mark.parametrize(("query", "classes"), [
    ("class=reconciliation_break", ["reconciliation_break"]),
    ("entity=le_us", ["closed_period", "reconciliation_break"]),
    ("entity=le_eu", []),
    ("amount_min=1000", ["closed_period"]),
    ("amount_max=1000&currency=USD", ["reconciliation_break"]),
    ("currency=EUR", []),
    ("age_max_s=86400", ["closed_period"]),
    ("age_min_s=86400", ["reconciliation_break"]),
    ("status=resolved", []),
])
def test_the_queue_filters(world: World, query: str, classes: list[str]) -> None:
    _stray_break(world)  # on 2026-01-01
    _late_payment(world, seats=50)  # on 2026-02-03, now
    shown = _ok(world.client.get(f"/v1/exceptions/queue?{query}",
                                 headers=world.as_("auditor", READER)))
    assert [e["class"] for e in shown["exceptions"]] == classes
    assert shown["count"] == len(classes)


@pytest.mark.parametrize(("query", "code"), [
    ("entity=le_nowhere", "unknown_entity"), ("class=nothing", "unknown_exception_class"),
    ("status=lost", "unknown_status"), ("currency=XXX", "unknown_currency"),
    ("amount_min=10&amount_max=1", "invalid_filter"),
    ("age_min_s=10&age_max_s=1", "invalid_filter"),
    ("amount_min=1e999", "invalid_request"), ("amount_min=NaN", "invalid_request"),
    ("amount_min=1.2345", "invalid_request"), ("age_min_s=-1", "invalid_request")])
def test_a_filter_that_names_nothing_is_refused(world: World, query: str, code: str) -> None:
    response = world.client.get(f"/v1/exceptions/queue?{query}",
                                headers=world.as_("auditor", READER))
    assert response.json()["error"]["code"] == code, response.text
    assert response.status_code in (400, 404, 422)


def test_the_detail_shows_the_document_chain_and_attempts_redacted_by_scope(
        world: World) -> None:
    late = _late_payment(world, seats=50)
    reader = _ok(world.client.get(f"/v1/exceptions/{late}/detail",
                                  headers=world.as_("auditor", READER)))
    assert reader["document"]["payment"]["id"] == "pay_t"
    assert reader["entity"] == "le_us"
    assert [e["type"] for e in reader["correlation_chain"]][-1] == "payment.applied"
    [delivery] = reader["deliveries"]
    assert delivery["target"] == "ledger" and delivery["status"] in ("failed", "dead")
    assert delivery["attempts"] >= 1 and "closed" in delivery["last_error"]
    assert reader["offered"] == [
        {"action": "retry", "needs_approval": False},
        {"action": "reroute", "needs_approval": True},  # 6000.00 USD > 1000.00
        {"action": "resolve", "needs_approval": True},
        {"action": "ignore", "needs_approval": True}]
    assert reader["calls"] is None  # the external calls need audit:read
    full = _ok(world.client.get(f"/v1/exceptions/{late}/detail",
                                headers=world.as_("controller", APPROVER)))
    assert isinstance(full["calls"], list)


def test_the_raw_payload_shows_personal_data_only_with_pii_read(world: World) -> None:
    body = {"type": "no.such.event", "customer": {"email": "jane@example.com"}}
    world.finance.hub.intake.store([RawIn("canonical", json.dumps(body).encode(), {})])
    world.finance.hub.run_until_idle()
    [row] = world.finance.triage.listing(exception_class="mapping_error")
    path = f"/v1/exceptions/{row['id']}/detail"
    reader = _ok(world.client.get(path, headers=world.as_("auditor", READER)))
    assert "jane@example.com" not in json.dumps(reader)
    assert reader["raw_payload"]["type"] == "no.such.event"
    assert reader["document"] is None  # never mapped
    full = _ok(world.client.get(path, headers=world.as_("controller", APPROVER)))
    assert full["raw_payload"]["customer"]["email"] == "jane@example.com"


def test_an_exception_is_worked_from_open_to_resolved_by_two_people(world: World) -> None:
    late = _late_payment(world, seats=50)
    clerk = world.as_("ar.clerk", CLERK)
    controller = world.as_("controller", APPROVER)
    second = world.as_("cfo", APPROVER)
    asked = _ok(world.client.post(f"/v1/exceptions/{late}/reroute", headers=controller,
                                  json={"reason": "January is closed"}))
    [outcome] = asked["outcomes"]
    assert outcome["status"] == "pending_approval"
    # The clerk may not decide at all; the controller may not approve their own request.
    _refused(world.client.post(f"/v1/approvals/actions/{outcome['action_id']}/approve",
                               headers=clerk, json={"reason": "mine"}), 403, "forbidden")
    inbox = _ok(world.client.get("/v1/approvals", headers=controller))
    assert [(a["id"], a["mine"], a["exception"]["id"]) for a in inbox["actions"]] == \
        [(outcome["action_id"], True, late)]
    _refused(world.client.post(f"/v1/approvals/actions/{outcome['action_id']}/approve",
                               headers=controller, json={"reason": "mine"}),
             403, "same_person")
    done = _ok(world.client.post(f"/v1/approvals/actions/{outcome['action_id']}/approve",
                                 headers=second, json={"reason": "checked"}))
    assert done["outcomes"][0]["status"] == "done"
    # The pipeline ran after the approval (as the CLI's): the posting went to February.
    shown = _ok(world.client.get(f"/v1/exceptions/{late}/detail", headers=second))
    assert shown["status"] == "resolved" and shown["offered"] == []
    assert [(a["action"], a["requested_by"], a["decided_by"], a["status"])
            for a in shown["actions"]] == [("reroute", "controller", "cfo", "done")]
    trail = world.finance.audit.records(0, 500)["records"]
    assert [(r["actor"], r["action"]) for r in trail
            if r["action"] in ("exception.reroute", "approval.approve")] == \
        [("controller", "exception.reroute"), ("cfo", "approval.approve")]
    assert _ok(world.client.get("/v1/approvals", headers=second))["count"] == 0


def test_a_request_past_its_time_leaves_the_inbox_and_cannot_be_approved(
        world: World) -> None:
    late = _late_payment(world, seats=50)
    controller = world.as_("controller", APPROVER)
    asked = _ok(world.client.post(f"/v1/exceptions/{late}/resolve", headers=controller,
                                  json={"reason": "paid elsewhere"}))["outcomes"][0]
    assert _ok(world.client.get("/v1/approvals", headers=controller))["count"] == 1
    world.clock.tick(73 * 3600)  # past [controls] pending_ttl_h (72)
    assert _ok(world.client.get("/v1/approvals", headers=controller))["count"] == 0
    _refused(world.client.post(f"/v1/approvals/actions/{asked['action_id']}/approve",
                               headers=world.as_("cfo", APPROVER), json={"reason": "late"}),
             409, "approval_expired")
    assert world.finance.triage.show(late)["status"] == "open"


def test_the_standing_version_of_a_changed_resend_is_chosen(world: World) -> None:
    def payment(amount: str) -> RawIn:
        return RawIn("canonical", json.dumps(envelope(
            "payment.applied", "pay-1", ("payment", "pay_1", None),
            {"payment": payment_doc("pay_1", amount, "inv_1")},
            correlation_id="ord_1")).encode(), {})
    world.finance.hub.intake.store([payment("500.00")])
    world.finance.hub.run_until_idle()
    world.finance.hub.intake.store([payment("499.00")])
    world.finance.hub.run_until_idle()
    [row] = world.finance.triage.listing(exception_class="duplicate_event")
    clerk = world.as_("ar.clerk", CLERK)
    shown = _ok(world.client.get(f"/v1/exceptions/{row['id']}/detail", headers=clerk))
    assert [a["action"] for a in shown["offered"]] == ["resolve_duplicate", "resolve", "ignore"]
    kept = _ok(world.client.post(f"/v1/exceptions/{row['id']}/resolve-duplicate",
                                 headers=clerk, json={"reason": "the first one was right",
                                                      "keep": "stored"}))
    assert (kept["outcomes"][0]["action"], kept["outcomes"][0]["status"]) == \
        ("choose_body", "done")
    assert world.finance.triage.show(row["id"])["status"] == "resolved"


def test_an_action_that_does_not_apply_is_refused_with_its_code(world: World) -> None:
    _stray_break(world)
    [row] = world.finance.triage.listing(exception_class="reconciliation_break")
    clerk = world.as_("ar.clerk", CLERK)
    _refused(world.client.post(f"/v1/exceptions/{row['id']}/reroute", headers=clerk,
                               json={"reason": "why not"}), 409, "action_not_applicable")
    _refused(world.client.post(f"/v1/exceptions/{row['id']}/resolve", headers=clerk,
                               json={"reason": ""}), 422, "invalid_request")
    # PostgreSQL's text cannot hold a NUL: refused before anything is stored.
    _refused(world.client.post(f"/v1/exceptions/{row['id']}/resolve", headers=clerk,
                               json={"reason": "a\u0000b"}), 422, "invalid_request")
    _refused(world.client.post(f"/v1/exceptions/{row['id']}/resolve-duplicate",
                               headers=clerk, json={"reason": "x", "keep": "stored"}),
             409, "action_not_applicable")


def _finished(w: World, job: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    for _ in range(200):
        job = _ok(w.client.get(f"/v1/jobs/{job['id']}", headers=headers))
        if job["status"] != "running":
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job['id']} still running")


def test_bulk_replay_of_a_filtered_queue_is_a_job(world: World) -> None:
    _stray_break(world)  # nothing to send again: listed, not replayed
    late = _late_payment(world, seats=5)
    [stray] = world.finance.triage.listing(exception_class="reconciliation_break")
    clerk = world.as_("ar.clerk", CLERK)
    job = _ok(world.client.post("/v1/exceptions/replay", headers=clerk,
                                json={"reason": "after the fix",
                                      "filter": {"entity": "le_us"}}), 202)
    job = _finished(world, job, clerk)
    assert job["status"] == "done", job
    assert (job["result"]["matching"], job["result"]["chosen"]) == (2, 2)
    assert [(o["exception_id"], o["action"]) for o in job["result"]["replayed"]] == \
        [(late, "replay")]
    assert [(r["exception_id"], r["code"]) for r in job["result"]["refused"]] == \
        [(stray["id"], "nothing_to_send")]
    trail = world.finance.audit.records(0, 500)["records"]
    assert ("ar.clerk", "exception.replay") in [(r["actor"], r["action"]) for r in trail]


def test_a_period_reopen_is_decided_from_the_inbox_by_a_second_person(world: World) -> None:
    world.clock.to(date(2026, 2, 1))
    world.finance.close.close("le_us", "2026-01", "controller")
    periods = build_period_control(world.config, world.finance.hub.engine, world.clock)
    asked = periods.request_reopen(ALICE, "le_us", "2026-01", "a late credit memo")
    alice = world.as_("alice", APPROVER)
    inbox = _ok(world.client.get("/v1/approvals", headers=alice))
    assert [(r["id"], r["kind"], r["mine"]) for r in inbox["requests"]] == \
        [(asked.id, "period.reopen", True)]
    _refused(world.client.post(f"/v1/approvals/requests/{asked.id}/approve", headers=alice,
                               json={"reason": "mine"}), 403, "same_person")
    decided = _ok(world.client.post(f"/v1/approvals/requests/{asked.id}/approve",
                                    headers=world.as_("bob", APPROVER),
                                    json={"reason": "agreed"}))
    assert (decided["status"], decided["decided_by"]) == ("approved", "bob")
    _refused(world.client.post(f"/v1/approvals/requests/{asked.id}/reject",
                               headers=world.as_("bob", APPROVER), json={"reason": "late"}),
             409, "request_not_pending")
