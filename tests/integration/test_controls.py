"""Two-person controls on principals, on both databases: segregation of duties in the
exception queue (a same-person attempt that differs only in letter case included), a period
reopen that needs a second principal, a configuration change that needs approval before the
pipeline uses it, pending approvals that expire, and the audit record of each."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, select

from finsync.audit.tables import trail
from finsync.auth.local import ForbiddenError
from finsync.auth.principal import (
    ADMIN,
    EXCEPTIONS_ACT,
    EXCEPTIONS_APPROVE,
    FINANCE_READ,
    PERIODS_MANAGE,
    Principal,
)
from finsync.bootstrap import (
    Finance,
    build_billing_service,
    build_config_control,
    build_finance,
    build_period_control,
)
from finsync.config import DEFAULT_CONFIG, FinsyncConfig, parse_config
from finsync.controls.configuration import ConfigNotApprovedError
from finsync.controls.period import PeriodControl
from finsync.controls.request import (
    AlreadyRequestedError,
    ApprovalExpiredError,
    RequestStatus,
    SamePersonError,
    TwoPerson,
)
from finsync.controls.tables import metadata as controls_metadata
from finsync.demo.clock import SimClock
from finsync.domain.catalog import BillingFrequency
from finsync.domain.contract import ContractLine, SubscriptionContract
from finsync.domain.journal import PeriodStatus
from finsync.domain.money import Money
from finsync.domain.party import CustomerAccount
from finsync.storage.db import reading
from finsync.systems.billing.handler import RegisterCustomer
from finsync.systems.billing.payment import PayInvoice
from finsync.systems.billing.service import BillingService
from finsync.systems.billing.subscription import CreateSubscription
from finsync.triage import service as triage_service
from finsync.triage.service import SegregationOfDutiesError

CLERK = Principal.of("ar.clerk", [FINANCE_READ, EXCEPTIONS_ACT, PERIODS_MANAGE])
# The clerk again, spelled in capitals, and holding the approve scope: still the clerk.
CLERK_SHOUTING = Principal.of("AR.Clerk", [EXCEPTIONS_ACT, EXCEPTIONS_APPROVE, PERIODS_MANAGE,
                                           ADMIN])
CONTROLLER = Principal.of("controller", [FINANCE_READ, EXCEPTIONS_APPROVE, PERIODS_MANAGE,
                                         ADMIN])
ADMIN_ONLY = Principal.of("it.admin", [ADMIN, PERIODS_MANAGE])  # may not approve
START = datetime(2026, 1, 1, tzinfo=UTC)


def _config(tmp_path: Path, **changes: Any) -> FinsyncConfig:
    data = tomllib.loads(DEFAULT_CONFIG.read_text())
    data.update(changes)
    return parse_config(data, tmp_path)


def _trail(engine: Engine, action: str) -> list[dict[str, Any]]:
    with reading(engine) as conn:
        rows = conn.execute(select(trail).where(trail.c.action == action)
                            .order_by(trail.c.seq)).mappings()
        return [dict(r) for r in rows]


# -- the exception queue ----------------------------------------------------------------
@pytest.fixture
def world(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
          ) -> Iterator[tuple[Finance, BillingService, SimClock]]:
    monkeypatch.setenv("FINSYNC_DATABASE_URL", db_url)
    config = _config(tmp_path)
    clock = SimClock(START)
    finance = build_finance(config, clock=clock)
    yield finance, build_billing_service(config, finance.hub.engine, clock), clock
    finance.hub.engine.dispose()


def _material_late_payment(finance: Finance, billing: BillingService, clock: SimClock) -> int:
    """A 6,000.00 payment dated in closed January: re-routing it needs approval."""
    billing.execute(RegisterCustomer(CustomerAccount("cus_t", "T", "le_us", "USD", "US")))
    start, end = date(2026, 1, 1), date(2027, 1, 1)
    line = ContractLine("ln_seats", "prod_platform_seat", "price_seat_annual", 50,
                        Money.of("120.00", "USD"), start, end)
    billing.execute(CreateSubscription(SubscriptionContract(
        "con_t", "cus_t", "le_us", "USD", start, end, BillingFrequency.ANNUAL, (line,))))
    finance.hub.run_until_idle()
    clock.to(date(2026, 2, 1))
    finance.close.close("le_us", "2026-01", CONTROLLER.id)
    clock.to(date(2026, 2, 3))
    billing.execute(PayInvoice("pay_t", billing.invoices()[0].id,
                               Money.of("6000.00", "USD"), date(2026, 1, 30)))
    finance.hub.run_until_idle()
    [row] = finance.triage.listing(exception_class="closed_period")
    return int(row["id"])


def test_the_requester_cannot_approve_even_in_other_letter_case(
        world: tuple[Finance, BillingService, SimClock]) -> None:
    finance, billing, clock = world
    exception_id = _material_late_payment(finance, billing, clock)
    asked = finance.triage.reroute(exception_id, CLERK, "January is closed")
    assert asked.status == "pending_approval"
    with pytest.raises(ForbiddenError, match="exceptions:approve"):
        finance.triage.approve(asked.action_id, CLERK, "mine")  # no approve scope
    with pytest.raises(SegregationOfDutiesError) as refused:
        finance.triage.approve(asked.action_id, CLERK_SHOUTING, "it is still me")
    assert refused.value.code == "same_person"
    with pytest.raises(ForbiddenError):
        finance.triage.approve(asked.action_id, ADMIN_ONLY, "admin is not approve")
    done = finance.triage.approve(asked.action_id, CONTROLLER, "late bank file")
    assert done.status == "done"
    [request] = _trail(finance.hub.engine, "exception.reroute")
    assert (request["actor"], request["object_type"], request["object_id"],
            request["reason"]) == ("ar.clerk", "triage_action", str(asked.action_id),
                                   "January is closed")
    assert '"status":"pending_approval"' in request["after"]
    assert f'"exception_id":{exception_id}' in request["after"]
    [decision] = _trail(finance.hub.engine, "approval.approve")
    assert (decision["actor"], decision["object_type"], decision["object_id"]) == (
        "controller", "triage_action", str(asked.action_id))
    # The trail covers the triage log: each action's row agrees with its latest record.
    assert finance.audit.verify().ok


def test_an_undecided_correction_expires_and_reopens_its_exception(
        world: tuple[Finance, BillingService, SimClock]) -> None:
    finance, billing, clock = world
    exception_id = _material_late_payment(finance, billing, clock)
    asked = finance.triage.reroute(exception_id, CLERK, "January is closed")
    clock.tick(int(timedelta(hours=72).total_seconds()) + 1)  # the default time to live
    with pytest.raises(triage_service.ApprovalExpiredError):
        finance.triage.approve(asked.action_id, CONTROLLER, "too late")
    shown = finance.triage.show(exception_id)
    assert shown["status"] == "open" and shown["actions"][0]["status"] == "expired"
    [expiry] = _trail(finance.hub.engine, "approval.expire")
    assert (expiry["actor"], expiry["object_id"]) == ("system:triage", str(asked.action_id))
    again = finance.triage.reroute(exception_id, CLERK, "still closed; asking again")
    assert again.status == "pending_approval"


def test_every_action_needs_its_scope(world: tuple[Finance, BillingService, SimClock]) -> None:
    finance, billing, clock = world
    exception_id = _material_late_payment(finance, billing, clock)
    reader = Principal.of("auditor", [FINANCE_READ])
    with pytest.raises(ForbiddenError, match="exceptions:act"):
        finance.triage.resolve(exception_id, reader, "looks fine to me")
    assert finance.triage.show(exception_id)["status"] == "open"
    assert _trail(finance.hub.engine, "exception.resolve") == []


# -- period reopen ----------------------------------------------------------------------
@pytest.fixture
def periods(tmp_path: Path, engine: Engine) -> tuple[PeriodControl, SimClock]:
    clock = SimClock(START)
    control = build_period_control(_config(tmp_path), engine, clock)
    control.close(CONTROLLER, "le_us", "2026-01")
    return control, clock


def _period_status(control: PeriodControl, name: str) -> PeriodStatus:
    ledger = control._ledger
    return next(p.status for p in ledger.periods("le_us") if p.name == name)


def test_a_reopen_waits_for_a_second_principal(periods: tuple[PeriodControl, SimClock],
                                               engine: Engine) -> None:
    control, _clock = periods
    asked = control.request_reopen(CLERK, "le_us", "2026-01", "late invoice")
    assert asked.status is RequestStatus.PENDING
    assert _period_status(control, "2026-01") is PeriodStatus.CLOSED  # not yet
    with pytest.raises(AlreadyRequestedError):
        control.request_reopen(CONTROLLER, "le_us", "2026-01", "me too")
    with pytest.raises(SamePersonError):
        control.decide_reopen(CLERK_SHOUTING, asked.id, "it is me", approve=True)
    with pytest.raises(ForbiddenError, match="exceptions:approve"):
        control.decide_reopen(ADMIN_ONLY, asked.id, "no approve scope", approve=True)
    assert _period_status(control, "2026-01") is PeriodStatus.CLOSED
    done = control.decide_reopen(CONTROLLER, asked.id, "agreed", approve=True)
    assert (done.status, done.decided_by) == (RequestStatus.APPROVED, "controller")
    assert _period_status(control, "2026-01") is PeriodStatus.OPEN
    log = control._ledger.period_log("le_us")
    assert [(e["to_status"], e["actor"], e["reason"]) for e in log] == [
        ("closed", "controller", None), ("open", "ar.clerk", "late invoice")]
    # each period-log row has its audit record, and so has the approval
    assert [(r["actor"], r["object_id"], r["reason"]) for r in _trail(engine, "period.reopen")
            ] == [("ar.clerk", "le_us:2026-01", "late invoice")]
    assert [r["actor"] for r in _trail(engine, "period.close")] == ["controller"]
    assert [r["actor"] for r in _trail(engine, "approval.request")] == ["ar.clerk"]
    assert [r["actor"] for r in _trail(engine, "approval.approve")] == ["controller"]


def test_a_rejected_reopen_leaves_the_period_closed(periods: tuple[PeriodControl, SimClock],
                                                    engine: Engine) -> None:
    control, _clock = periods
    asked = control.request_reopen(CLERK, "le_us", "2026-01", "late invoice")
    control.decide_reopen(CONTROLLER, asked.id, "book it in February", approve=False)
    assert _period_status(control, "2026-01") is PeriodStatus.CLOSED
    assert _trail(engine, "period.reopen") == []
    assert [r["actor"] for r in _trail(engine, "approval.reject")] == ["controller"]


def test_a_pending_reopen_expires(periods: tuple[PeriodControl, SimClock],
                                  engine: Engine) -> None:
    control, clock = periods
    asked = control.request_reopen(CLERK, "le_us", "2026-01", "late invoice")
    clock.tick(72 * 3600 + 1)
    assert control.pending() == []
    with pytest.raises(ApprovalExpiredError):
        control.decide_reopen(CONTROLLER, asked.id, "too late", approve=True)
    assert _period_status(control, "2026-01") is PeriodStatus.CLOSED
    [expiry] = _trail(engine, "approval.expire")
    assert (expiry["actor"], expiry["object_id"]) == ("system:controls", str(asked.id))
    assert control.request_reopen(CLERK, "le_us", "2026-01", "again").status is \
        RequestStatus.PENDING  # the expired one no longer blocks a new request


# -- controlled configuration -----------------------------------------------------------
def test_a_changed_threshold_is_refused_until_a_second_principal_approves(
        tmp_path: Path, engine: Engine) -> None:
    clock = SimClock(START)
    first = _config(tmp_path)
    control = build_config_control(first, engine, clock)
    adopted = control.check(first)  # the first configuration a database sees
    changed = _config(tmp_path, triage={"approval_threshold": "1000000.00"})
    with pytest.raises(ConfigNotApprovedError) as refused:
        control.check(changed)
    assert refused.value.code == "config_not_approved"
    assert "triage" in str(refused.value) and "finsync config propose" in str(refused.value)
    proposal = control.propose(CLERK_SHOUTING, changed, "materiality review")
    assert f"config approve {proposal.id}" in _refusal(control, changed)
    with pytest.raises(SamePersonError):
        control.decide(CLERK_SHOUTING, proposal.id, "mine", approve=True)
    with pytest.raises(ForbiddenError):
        control.decide(ADMIN_ONLY, proposal.id, "no approve scope", approve=True)
    control.decide(CONTROLLER, proposal.id, "board approved", approve=True)
    assert control.check(changed) != adopted
    with pytest.raises(ConfigNotApprovedError):
        control.check(first)  # going back is a change too
    assert [(r["actor"], r["action"]) for r in _trail(engine, "config.adopt")
            + _trail(engine, "config.propose") + _trail(engine, "config.approve")] == [
        ("system:controls", "config.adopt"), ("ar.clerk", "config.propose"),
        ("controller", "config.approve")]


def _refusal(control: Any, config: FinsyncConfig) -> str:
    with pytest.raises(ConfigNotApprovedError) as refused:
        control.check(config)
    return str(refused.value)


@pytest.mark.parametrize("section", ["routes", "ownership"])
def test_routes_and_ownership_are_controlled_too(tmp_path: Path, engine: Engine,
                                                 section: str) -> None:
    base = _config(tmp_path)
    control = build_config_control(base, engine, SimClock(START))
    control.check(base)
    data = base.model_dump(mode="json", include={section})[section]
    key = next(iter(data))
    data[key] = ["ledger"] if section == "routes" else "ledger"
    with pytest.raises(ConfigNotApprovedError, match=section):
        control.check(_config(tmp_path, **{section: data}))


def test_a_request_needs_a_reason_and_a_decision_a_note(engine: Engine) -> None:
    requests = TwoPerson(engine, SimClock(START), timedelta(hours=1))
    with pytest.raises(Exception, match="reason"):
        requests.request(CLERK, "period.reopen", "le_us:2026-01", {}, (PERIODS_MANAGE,), " ")
    asked = requests.request(CLERK, "period.reopen", "le_us:2026-01", {}, (PERIODS_MANAGE,),
                             "why")
    with pytest.raises(Exception, match="note"):
        requests.decide(asked.id, CONTROLLER, "", approve=True)


def test_the_controls_migrations_produce_exactly_the_declared_schema(engine: Engine) -> None:
    ours = set(controls_metadata.tables)

    def include(name: str | None, kind: str, _parent: object) -> bool:
        return kind != "table" or name in ours

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": include})
        assert compare_metadata(context, controls_metadata) == []
