"""Invoices held for tax through the hub: `invoice.held` opens one `tax_failure` per draft,
`invoice.released` resolves it; redelivery and replay change nothing; status shows them;
triage's retry asks billing (a hand-written port here) and `serve`'s retry backs off."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from finsync.connectors.ports import HeldRetry
from finsync.domain import codec
from finsync.domain.errors import ExceptionClass, TransientError
from finsync.domain.events import InvoiceHeld, InvoiceReleased
from finsync.domain.invoice import HeldInvoice
from finsync.domain.money import Money
from finsync.hub.held_invoice import fingerprint
from finsync.hub.held_retry import HeldRetry as HeldRetryJob
from finsync.hub.held_retry import HeldRetryPolicy
from finsync.hub.replay import ReplayFilter
from finsync.hub.service import Hub
from finsync.storage import exception_log, milestone_log
from finsync.storage.db import reading
from finsync.storage.schema import exceptions
from finsync.triage.policy import ApprovalPolicy
from finsync.triage.service import NotApplicableError, Triage
from tests.builders import envelope
from tests.hubkit import Clock, ingest, make_hub, settings
from tests.people import ALICE

DRAFT = HeldInvoice(
    id="hold_1", version=1, customer_id="cus_ny", contract_id="con_1", legal_entity="le_us",
    currency="USD", issue_date=date(2026, 2, 1), subtotal=Money.of("1200.00", "USD"),
    code="tax_unavailable", reason="the tax engine did not answer", transient=True)


def _held(draft: HeldInvoice, *, released: bool = False) -> bytes:
    event = InvoiceReleased(draft) if released else InvoiceHeld(draft)
    return json.dumps(envelope(
        event.name, f"{draft.id}-v{draft.version}", ("held_invoice", draft.id, draft.version),
        dict(codec.encode_event(event)), correlation_id="thread-1")).encode()


def _row(engine: Engine, draft_id: str = "hold_1") -> dict[str, Any]:
    with reading(engine) as conn:
        found = exception_log.latest_by_fingerprint(conn, [fingerprint(draft_id)])
        row = exception_log.get(conn, found[fingerprint(draft_id)][0])
    assert row is not None
    return row


def _milestones(engine: Engine) -> list[str]:
    with reading(engine) as conn:
        return [m["name"] for m in milestone_log.timeline(conn, "thread-1")]


def _exception_count(engine: Engine) -> int:
    with reading(engine) as conn:
        return int(conn.execute(select(func.count()).select_from(exceptions)).scalar_one())


def _hub(engine: Engine, tmp_path: Path, clock: Clock | None = None) -> Hub:
    return make_hub(engine, tmp_path, hub_settings=settings(), clock=clock)


def test_a_hold_opens_one_retrying_tax_failure_with_the_subtotal_at_stake(
        engine: Engine, tmp_path: Path) -> None:
    hub = _hub(engine, tmp_path)
    ingest(hub, [_held(DRAFT)])
    hub.run_until_idle()
    row = _row(engine)
    assert row["class"] == ExceptionClass.TAX_FAILURE
    assert row["status"] == "retrying"  # transient: billing retries
    assert row["amount_at_stake"] == "1200.00 USD"  # the subtotal, before tax
    assert row["correlation_id"] == "thread-1"
    assert row["objects"] == ["held_invoice:hold_1", "customer:cus_ny", "contract:con_1"]
    assert "tax_unavailable" in row["summary"]
    assert _milestones(engine) == ["invoice_held"]
    held = hub.status_report().held_for_tax
    assert (held.count, held.amounts) == (1, {"USD": Money.of("1200.00", "USD")})
    assert hub.status()["held_for_tax"] == {"count": 1, "at_stake": {"USD": "1200.00"},
                                            "exception_class": "tax_failure"}


def test_a_refusal_opens_it_open_and_a_second_hold_updates_the_same_exception(
        engine: Engine, tmp_path: Path) -> None:
    hub = _hub(engine, tmp_path)
    ingest(hub, [_held(DRAFT)])
    hub.run_until_idle()
    refused = replace(DRAFT, version=2, code="tax_refused", reason="unknown region XX",
                      transient=False)
    ingest(hub, [_held(refused)])
    hub.run_until_idle()
    row = _row(engine)
    assert row["status"] == "open"  # master data must change first
    assert "tax_refused" in row["summary"] and "unknown region XX" in row["summary"]
    assert _exception_count(engine) == 1
    assert _milestones(engine) == ["invoice_held", "invoice_held"]  # one per hold


def test_a_release_resolves_it_naming_the_invoice_and_replays_change_nothing(
        engine: Engine, tmp_path: Path) -> None:
    hub = _hub(engine, tmp_path)
    ingest(hub, [_held(DRAFT)])
    hub.run_until_idle()
    released = replace(DRAFT, version=2, invoice_id="inv_77")
    ingest(hub, [_held(released, released=True)])
    hub.run_until_idle()
    row = _row(engine)
    assert row["status"] == "resolved"
    assert "inv_77" in row["resolution_note"]
    assert _milestones(engine) == ["invoice_held", "exception_resolved"]
    assert hub.status_report().held_for_tax.count == 0
    before = (_exception_count(engine), _milestones(engine), row)
    # Redelivered (same source ids, both versions) and replayed from the log: nothing moves.
    ingest(hub, [_held(DRAFT), _held(released, released=True)])
    hub.run_until_idle()
    hub.replay(ReplayFilter(everything=True))
    hub.run_until_idle()
    assert (_exception_count(engine), _milestones(engine), _row(engine)) == before


class FakeBilling:
    """A hand-written `HeldInvoicePort`: issues the drafts listed in `cure`, else holds."""

    system = "billing"

    def __init__(self) -> None:
        self.asked: list[str | None] = []
        self.cure: set[str] = set()
        self.down = False

    def retry_held(self, draft_id: str | None) -> HeldRetry:
        self.asked.append(draft_id)
        if self.down:
            raise TransientError("billing's database is unreachable")
        if draft_id in self.cure:
            return HeldRetry(issued=((draft_id, "inv_9"),))
        return HeldRetry()


def _triage(engine: Engine, clock: Clock, billing: FakeBilling | None) -> Triage:
    return Triage(engine, ApprovalPolicy(Decimal("1000.00"), {}, timedelta(hours=24)),
                  lambda _name: None, clock, billing)


def test_triage_retry_asks_billing_for_the_draft_after_its_action_is_recorded(
        engine: Engine, tmp_path: Path) -> None:
    clock = Clock()
    hub = _hub(engine, tmp_path, clock)
    ingest(hub, [_held(replace(DRAFT, transient=False, code="tax_refused"))])
    hub.run_until_idle()
    exception_id = int(_row(engine)["id"])
    with pytest.raises(NotApplicableError, match="no billing system"):
        _triage(engine, clock, None).retry(exception_id, ALICE, "region fixed")
    billing = FakeBilling()
    billing.cure.add("hold_1")
    outcome = _triage(engine, clock, billing).retry(exception_id, ALICE, "region fixed")
    assert billing.asked == ["hold_1"]
    assert "issued it as invoice inv_9" in outcome.detail
    assert _row(engine)["status"] == "retrying"  # until billing's release arrives
    billing.down = True
    outcome = _triage(engine, clock, billing).retry(exception_id, ALICE, "again")
    assert "could not be asked now" in outcome.detail
    assert _row(engine)["status"] == "retrying"  # the periodic retry asks again


def test_the_periodic_retry_backs_off_per_draft_and_forgets_resolved_ones(
        engine: Engine, tmp_path: Path) -> None:
    clock = Clock()
    hub = _hub(engine, tmp_path, clock)
    ingest(hub, [_held(DRAFT), _held(replace(DRAFT, id="hold_2", transient=False))])
    hub.run_until_idle()
    billing = FakeBilling()
    # base 10 s, cap 40 s; full jitter is drawn from this seeded generator.
    job = HeldRetryJob(engine, billing, clock, HeldRetryPolicy(10, 40, 5), random.Random(3))
    asked_at: list[int] = []
    for second in range(400):
        if job.step(lambda: None):
            asked_at.append(second)
        clock.advance(1)
    # Only the transient draft is retried; the refused one waits for a person.
    assert set(billing.asked) == {"hold_1"} and len(billing.asked) == len(asked_at)
    # The first retry at most base = 10 s after the hold; after the n-th, the next at most
    # min(cap, base * 2^n) later: 20, 40, 40, ... (+1: the job looks once a second).
    assert asked_at[0] <= 10 + 1
    for n, (before, after) in enumerate(pairwise(asked_at), start=1):
        assert 1 <= after - before <= min(40, 10 * 2 ** n) + 1, (n, asked_at)
    # So in 400 s at least 400 / 41 attempts, and fewer than one a second.
    assert 9 <= len(asked_at) < 100
    ingest(hub, [_held(replace(DRAFT, version=2, invoice_id="inv_1"), released=True)])
    hub.run_until_idle()
    count = len(billing.asked)
    for _second in range(100):
        job.step(lambda: None)
        clock.advance(1)
    assert len(billing.asked) == count  # resolved: never asked again


def test_serve_runs_the_periodic_retry_in_a_thread_of_its_own(
        engine: Engine, tmp_path: Path) -> None:
    from finsync.api.app import pipeline_supervisor
    from finsync.hub.held_retry import HELD_RETRY

    clock = Clock()
    hub = _hub(engine, tmp_path, clock)
    job = HeldRetryJob(engine, FakeBilling(), clock)
    names = [w.name for w in pipeline_supervisor(hub, 1.0, held=job).workers]
    assert HELD_RETRY in names
    assert HELD_RETRY not in [w.name for w in pipeline_supervisor(hub, 1.0).workers]
