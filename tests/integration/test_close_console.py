"""The Close and Contract timeline pages' JSON API, on both databases: the period view is the
close's own checklist (the read the close refuses on), a blocked close is refused with its
code and changes nothing, a close answers what `finsync close --json` prints and is audited
as the principal, a reopen needs a second person (the first is refused `same_person`), and a
correlation id's timeline is the hub's milestones, status, exceptions and (audit:read only)
external calls; an invoice's id finds its correlation id."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from finsync.api.app import create_app
from finsync.audit.tables import trail
from finsync.auth.principal import (
    AUDIT_READ,
    EXCEPTIONS_APPROVE,
    FINANCE_READ,
    PERIODS_MANAGE,
)
from finsync.bootstrap import Finance, build_finance
from finsync.demo.clock import SimClock
from finsync.domain.clock import month_period
from finsync.storage.db import reading
from finsync.views.services import Services, build_services
from tests import authkit
from tests.builders import contract_doc, envelope, invoice_doc, payment_doc
from tests.hubkit import send_events, shipped_config

MANAGER = [FINANCE_READ, PERIODS_MANAGE, EXCEPTIONS_APPROVE]


@dataclass
class World:
    finance: Finance
    services: Services
    clock: SimClock
    client: TestClient

    def as_(self, principal: str, scopes: list[str]) -> dict[str, str]:
        return authkit.bearer(authkit.issue(self.finance.hub.engine, scopes,
                                            principal=principal))


@pytest.fixture
def world(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("FINSYNC_DATABASE_URL", db_url)
    config = shipped_config(tmp_path)
    clock = SimClock(datetime(2026, 1, 1, 9, tzinfo=UTC))
    finance = build_finance(config, clock=clock)
    services = build_services(config, finance)
    with TestClient(create_app(finance.hub, services=services)) as client:
        yield World(finance, services, clock, client)
    finance.hub.engine.dispose()


def _january(world: World) -> None:
    """con_1 (10 seats at 120.00 a year from 2026-01-01) accepted, inv_1 (1,200.00) posted
    and linked to its revenue contract: correlation ord_1."""
    contract = contract_doc("con_1", 1, 10, "120.00")
    contract["lines"][0].update(product_id="prod_platform_seat", price_id="price_seat_annual")
    invoice = invoice_doc("inv_1", "1200.00", "con_1", version=1)
    invoice["lines"][0].update(product_id="prod_platform_seat")
    send_events(world.finance,
                envelope("contract.created", "con-v1", ("subscription_contract", "con_1", 1),
                         {"contract": contract}, correlation_id="ord_1"),
                envelope("invoice.issued", "inv-1", ("invoice", "inv_1", None),
                         {"invoice": invoice}, correlation_id="ord_1"))


def _actions(world: World, action: str) -> list[tuple[str, str]]:
    with reading(world.finance.hub.engine) as conn:
        rows = conn.execute(select(trail.c.actor, trail.c.object_id)
                            .where(trail.c.action == action).order_by(trail.c.seq))
        return [(str(a), str(o)) for a, o in rows]


def test_the_period_view_is_the_close_checklist(world: World) -> None:
    _january(world)
    reader = world.as_("revenue.accountant", [FINANCE_READ])
    view = world.client.get("/v1/close/le_us/2026-01", headers=reader).json()
    revenue = world.services.revenue
    assert revenue is not None
    [entry] = revenue.period_journals("le_us", month_period("2026-01"))
    checklist = world.finance.close.checklist("le_us", "2026-01", [entry]).as_json()
    assert (view["status"], view["blocks"]) == ("open", False)
    assert view["checklist"] == checklist["items"]
    assert view["journals"] == checklist["journals"]
    [journal] = view["journals"]
    # 10 seats x 120.00 = 1,200.00 a year; January is 31 of 365 days: 101.92 recognised
    # (deferred revenue debited, revenue credited), not sent until the close.
    assert (journal["id"], journal["state"], journal["total"]) == (
        entry.id, "not_sent", {"amount": "101.92", "currency": "USD"})
    assert {i["key"]: i["state"] for i in view["checklist"]} == {
        "raw_events_processed": "done", "events_sequenced": "done",
        "deliveries_settled": "done", "exceptions_held": "done",
        "revenue_journals": "to_do", "erp_period": "to_do"}
    board = world.client.get("/v1/close", headers=reader).json()
    assert {"legal_entity": "le_us", "period": "2026-01", "start": "2026-01-01",
            "end": "2026-02-01", "status": "open"} in board["periods"]


def test_a_blocked_close_is_refused_and_changes_nothing(world: World) -> None:
    """con_1 v3 before v2: parked before the period end, the close's cut-off waits for it."""
    _january(world)
    send_events(world.finance, envelope(
        "contract.amended", "con-v3", ("subscription_contract", "con_1", 3),
        {"amendment": {"id": "amd_3", "contract_id": "con_1", "version": 3,
                       "effective_date": "2026-01-20", "reason": "upgrade",
                       "changes": [{"op": "quantity", "line_id": "ln_seats", "before": "12",
                                    "after": "14"}],
                       "contract": contract_doc("con_1", 3, 14, "120.00")}},
        correlation_id="amd_3", at=datetime(2026, 1, 20, 9, tzinfo=UTC)))
    manager = world.as_("controller", MANAGER)
    view = world.client.get("/v1/close/le_us/2026-01", headers=manager).json()
    parked = next(i for i in view["checklist"] if i["key"] == "events_sequenced")
    assert (view["blocks"], parked["state"], parked["count"]) == (True, "outstanding", 1)
    assert parked["items"][0]["type"] == "contract.amended"
    refused = world.client.post("/v1/close/le_us/2026-01", json={}, headers=manager)
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "cutoff_incomplete")
    again = world.client.get("/v1/close/le_us/2026-01", headers=manager).json()
    assert again["status"] == "open" and _actions(world, "period.close") == []


def test_a_close_then_a_reopen_by_a_second_person(world: World) -> None:
    _january(world)
    world.clock.to(date(2026, 2, 1))
    alice = world.as_("alice", MANAGER)
    bob = world.as_("bob", MANAGER)
    closed = world.client.post("/v1/close/le_us/2026-01", json={}, headers=alice)
    assert closed.status_code == 200, closed.text
    body = closed.json()
    assert (body["legal_entity"], body["period"], body["status"]) == (
        "le_us", "2026-01", "closed")
    view = world.client.get("/v1/close/le_us/2026-01", headers=alice).json()
    assert [j["id"] for j in view["journals"]] == body["journals"]
    assert {j["state"] for j in view["journals"]} == {"posted"}
    assert {i["key"]: i["state"] for i in view["checklist"]}["erp_period"] == "done"
    assert _actions(world, "period.close") == [("alice", "le_us:2026-01")]
    assert view["log"][-1]["actor"] == "alice"

    asked = world.client.post("/v1/close/le_us/2026-01/reopen",
                              json={"reason": "a late credit memo"}, headers=alice).json()
    assert asked["status"] == "pending"
    url = f"/v1/approvals/requests/{asked['id']}"  # the approvals inbox decides it
    own = world.client.post(f"{url}/approve", json={"reason": "mine"}, headers=alice)
    assert (own.status_code, own.json()["error"]["code"]) == (403, "same_person")
    pending = world.client.get("/v1/close/le_us/2026-01", headers=bob).json()
    assert [r["id"] for r in pending["reopen_requests"]] == [asked["id"]]
    approved = world.client.post(f"{url}/approve", json={"reason": "agreed"}, headers=bob)
    assert approved.json()["status"] == "approved" and approved.json()["decided_by"] == "bob"
    assert world.client.get("/v1/close/le_us/2026-01", headers=bob).json()["status"] == "open"
    assert _actions(world, "period.reopen") == [("alice", "le_us:2026-01")]
    assert _actions(world, "approval.approve") == [("bob", str(asked["id"]))]
    twice = world.client.post(f"{url}/reject", json={"reason": "late"}, headers=bob)
    assert (twice.status_code, twice.json()["error"]["code"]) == (409, "request_not_pending")
    # Closed again: the revenue engine answers the journal it stored at the first close
    # (engine.md, "Immutable period journals"), which the ERP holds posted already.
    again = world.client.post("/v1/close/le_us/2026-01", json={}, headers=alice)
    assert again.status_code == 200, again.text
    assert (again.json()["status"], again.json()["journals"]) == ("closed", body["journals"])


def test_refusals_are_coded(world: World) -> None:
    manager = world.as_("controller", MANAGER)
    unknown = world.client.get("/v1/close/le_xx/2026-01", headers=manager)
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "unknown_entity")
    never = world.client.post("/v1/close/le_us/1999-01", json={}, headers=manager)
    assert (never.status_code, never.json()["error"]["code"]) == (404, "unknown_period")
    for bad in ("2026-13", "26-01", "2026-1"):
        response = world.client.get(f"/v1/close/le_us/{bad}", headers=manager)
        assert (response.status_code, response.json()["error"]["code"]) == (
            422, "invalid_request"), bad
    empty = world.client.post("/v1/close/le_us/2026-01/reopen", json={"reason": ""},
                              headers=manager)
    assert empty.status_code == 422
    extra = world.client.post("/v1/close/le_us/2026-01", json={"force": True},
                              headers=manager)
    assert (extra.status_code, extra.json()["error"]["code"]) == (422, "invalid_request")


def test_a_timeline_is_the_hubs_and_calls_need_audit_read(world: World) -> None:
    """pay_1 before inv_1: a sequencing_error on ord_1, resolved once the invoice posts."""
    send_events(world.finance, envelope(
        "payment.applied", "pay-1", ("payment", "pay_1", None),
        {"payment": payment_doc("pay_1", "1200.00", "inv_1")}, correlation_id="ord_1"))
    _january(world)
    world.clock.tick(600)
    world.finance.hub.run_until_idle()
    hub = world.finance.hub
    reader = world.as_("revenue.accountant", [FINANCE_READ])
    shown = world.client.get("/v1/correlations/ord_1/timeline", headers=reader).json()
    assert [m["milestone"] for m in shown["milestones"]] == [
        m["name"] for m in hub.timeline("ord_1")]
    status = hub.transaction_status("ord_1")
    assert {k: shown[k] for k in status} == status
    # The invoice and the payment to the ledger, the contract and the invoice to revrec,
    # the invoice committed to the tax engine.
    assert [(s["system"], s["technical"], s["deliveries"]) for s in shown["systems"]] == [
        ("ledger", "delivered", {"done": 2}), ("revrec", "delivered", {"done": 2}),
        ("tax", "delivered", {"done": 1})]
    [raised] = shown["exceptions"]
    assert (raised["class"], raised["status"], raised["amount_at_stake"]) == (
        "sequencing_error", "resolved", {"amount": "1200.00", "currency": "USD"})
    assert shown["calls"] is None and "audit:read" in shown["calls_withheld"]
    auditor = world.as_("auditor", [FINANCE_READ, AUDIT_READ])
    audited = world.client.get("/v1/correlations/ord_1/timeline", headers=auditor).json()
    assert audited["calls"] == [c.as_json() for c in hub.calls("ord_1")]
    assert audited["calls_withheld"] is None

    found = world.client.get("/v1/correlations", params={"q": "inv_1"}, headers=reader).json()
    assert [(c["correlation_id"], c["object_type"]) for c in found["correlations"]] == [
        ("ord_1", "invoice")]
    itself = world.client.get("/v1/correlations", params={"q": "ord_1"}, headers=reader)
    [corr] = itself.json()["correlations"]
    assert (corr["correlation_id"], corr["object_type"], corr["events"]) == ("ord_1", None, 3)
    nothing = world.client.get("/v1/correlations", params={"q": "nope"}, headers=reader)
    assert nothing.json()["correlations"] == []


def test_with_an_external_erp_the_months_are_the_erps_and_reopen_is_refused(
        world: World) -> None:
    """The ERP's role played elsewhere (`Services.ledger` None): the months come from the
    ERP port, and reopening is the ERP's own business (409 system_external)."""
    services = replace(world.services, ledger=None)
    with TestClient(create_app(world.finance.hub, services=services)) as client:
        manager = world.as_("controller", MANAGER)
        board = client.get("/v1/close", headers=manager).json()
        assert board["ledger"] == "external" and board["reopen_requests"] == []
        months = [p for p in board["periods"] if p["legal_entity"] == "le_us"]
        # The clock is at 2026-01-01: the ERP holds 2026's periods only.
        assert [(p["period"], p["status"]) for p in months] == [("2026-01", "open")]
        view = client.get("/v1/close/le_us/2026-01", headers=manager).json()
        assert (view["status"], view["log"], view["reopen_requests"]) == ("open", [], [])
        refused = client.post("/v1/close/le_us/2026-01/reopen", json={"reason": "late"},
                              headers=manager)
        assert (refused.status_code, refused.json()["error"]["code"]) == (
            409, "system_external")


def test_hostile_ids_are_answered_not_crashed_on(world: World) -> None:
    """What a careless or hostile caller sends: NUL and control characters, the longest id,
    a period a date cannot end; every answer coded, none a 5xx."""
    reader = world.as_("revenue.accountant", [FINANCE_READ])
    for text in ("\x00", "a\x00b", "\n", "é" * 255, "' OR 1=1 --", "%", "_"):
        found = world.client.get("/v1/correlations", params={"q": text}, headers=reader)
        assert found.status_code in (200, 422), (text, found.text)
        shown = world.client.get(f"/v1/correlations/{quote(text, safe='')}/timeline",
                                 headers=reader)
        assert shown.status_code in (200, 404, 422), (text, shown.text)
    for period in ("9999-12", "0000-01"):
        answer = world.client.get(f"/v1/close/le_us/{period}", headers=reader)
        assert answer.status_code == 422 and answer.json()["error"]["code"], period


def test_a_request_past_its_time_is_not_shown_and_the_page_writes_nothing(
        world: World) -> None:
    _january(world)
    world.clock.to(date(2026, 2, 1))
    alice = world.as_("alice", MANAGER)
    assert world.client.post("/v1/close/le_us/2026-01", json={},
                             headers=alice).status_code == 200
    asked = world.client.post("/v1/close/le_us/2026-01/reopen", json={"reason": "late"},
                              headers=alice).json()
    world.clock.to(date(2026, 3, 1))  # past `[controls] pending_ttl_h`
    view = world.client.get("/v1/close/le_us/2026-01", headers=alice).json()
    board = world.client.get("/v1/close", headers=alice).json()
    assert view["reopen_requests"] == [] == board["reopen_requests"]
    assert _actions(world, "approval.expire") == []  # reading records nothing
    late = world.client.post(f"/v1/approvals/requests/{asked['id']}/approve",
                             json={"reason": "ok"}, headers=world.as_("bob", MANAGER))
    assert (late.status_code, late.json()["error"]["code"]) == (409, "approval_expired")
    assert _actions(world, "approval.expire") == [("system:controls", str(asked["id"]))]
