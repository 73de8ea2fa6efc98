"""A database that already holds Stripe documents keeps working once Stripe Tax's breakdown
is mapped (issue 18), on both databases.

Before the upgrade finsync mapped a taxed invoice with its tax and no breakdown, and the hub
accepted that body. Every later Stripe event on the same invoice (`invoice.paid`, a void,
the poller's copy of a webhook already stored) maps it again; with the breakdown the body
would differ, and the hub keeps a differing body for finance as a `duplicate_event`. So an
upgraded source names the moment breakdowns began (`tax_breakdown_from`): documents issued
before it map as they did, documents issued since carry their breakdown.

The company is `tests/stripeshapes/company.py` in USD (10 % tax on every document): the
annual invoice in_usd_a1 (1 Oct, paid 1 Oct), the monthly in_usd_m1 (1 Oct, paid 3 Oct) and
in_usd_m2 (1 Nov). The old code is played by a source whose breakdowns begin in 2100 (it maps
exactly as before: tests/unit/stripe/test_taxes.py); it stores what Stripe sent up to 2 Oct.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, select

from finsync.bootstrap import Finance, build_finance
from finsync.config import FinsyncConfig
from finsync.demo.clock import SimClock
from finsync.domain.events import EventType, InvoiceIssued
from finsync.domain.invoice import Invoice
from finsync.domain.status import EventStatus
from finsync.storage import event_log
from finsync.storage.db import reading
from finsync.storage.schema import events
from tests.companykit import SECRET, SOURCE, config, settle
from tests.stripeshapes.company import USD, Company, company

CLOCK = datetime(2026, 12, 2, 9, tzinfo=UTC)
UPGRADE = datetime(2026, 10, 2, tzinfo=UTC)  # between in_usd_m1's issue and its payment
NEVER = datetime(2100, 1, 1, tzinfo=UTC)  # the old code: no document has a breakdown


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINSYNC_TEST_STRIPE_KEY", "sk_test_upgrade")
    monkeypatch.setenv("FINSYNC_TEST_WHSEC", SECRET)


@pytest.fixture
def finance_for(engine: Engine, db_url: str) -> Iterator[Any]:
    built: list[Finance] = []

    def build(since: datetime | None) -> Finance:
        finance = build_finance(_since(config(db_url, "USD", (USD,)), since), engine=engine,
                                clock=SimClock(CLOCK))
        built.append(finance)
        return finance
    yield build
    for finance in built:
        finance.ports.close()


def _since(conf: FinsyncConfig, since: datetime | None) -> FinsyncConfig:
    section = conf.stripe[SOURCE].model_copy(update={"tax_breakdown_from": since})
    return conf.model_copy(update={"stripe": {SOURCE: section}})


def _send(finance: Finance, stripe: Company, until: datetime | None = None) -> None:
    bodies = [s.body() for s in stripe.sent
              if until is None or s.event["created"] < until.timestamp()]
    finance.hub.store(SOURCE, bodies, {"x-finsync-poll": SOURCE})
    settle(finance)


def _invoices(engine: Engine) -> dict[str, Invoice]:
    """The invoices the hub accepted, by id."""
    found: dict[str, Invoice] = {}
    with reading(engine) as conn:
        ids = conn.execute(select(events.c.event_id).where(
            events.c.type == EventType.INVOICE_ISSUED,
            events.c.status != EventStatus.REJECTED)).scalars().all()
        for event_id in ids:
            env = event_log.get(conn, event_id)
            assert env is not None and isinstance(env.event, InvoiceIssued)
            found[env.event.invoice.id] = env.event.invoice
    return found


def test_an_upgraded_source_maps_stored_documents_again_to_the_same_body(
        finance_for: Any, engine: Engine) -> None:
    stripe = company((USD,))
    _send(finance_for(NEVER), stripe, until=UPGRADE)
    before = _invoices(engine)
    assert sorted(before) == ["in_usd_a1", "in_usd_m1"]
    upgraded = finance_for(UPGRADE)
    _send(upgraded, stripe)  # everything again, as a re-poll sends it, and what came since
    assert [(e["class"], e["fingerprint"]) for e in upgraded.hub.exceptions()] == []
    after = _invoices(engine)
    assert {k: after[k] for k in before} == before  # the stored bodies stand, unchanged
    assert [li.taxes for li in after["in_usd_m1"].lines] == [()]
    (detail,) = after["in_usd_m2"].lines[0].taxes  # issued since: 125.00 x 10 % in Japan
    assert (detail.jurisdiction, str(detail.rate), str(detail.amount.amount)) == (
        "JP", "0.1", "12.50")


def test_without_the_moment_breakdowns_began_a_stored_document_is_a_duplicate_event(
        finance_for: Any) -> None:
    """What the setting prevents: in_usd_m1, stored without a breakdown, comes again with
    one when it is paid on 3 October."""
    stripe = company((USD,))
    _send(finance_for(NEVER), stripe, until=UPGRADE)
    upgraded = finance_for(None)
    _send(upgraded, stripe)
    held = [e for e in upgraded.hub.exceptions() if e["class"] == "duplicate_event"]
    # one per invoice stored before: its first changed copy is held, the others count as
    # duplicates of that one
    assert sorted(o for e in held for o in e["objects"] if o.startswith("invoice:")) == [
        "invoice:in_usd_a1", "invoice:in_usd_m1"]
