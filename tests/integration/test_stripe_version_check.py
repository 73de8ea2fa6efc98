"""The hub's version check on Stripe (issue 17), against a real localstripe on SQLite and
PostgreSQL: CPQ's approved version 1 is ordered by the hub from the Stripe subscription
platform (`connectors/stripe/orders.py`), which creates the subscription marked with the
contract, customer and quote; the poller then reads Stripe's own events, and the Stripe
source maps them in the commercial layer's ids (`connectors/stripe/marks.py`):

- `customer.subscription.created` is contract `ctr-acme` v1 on the quote's thread
  (correlation id `q-acme-1`), so the hub checks it against the order line by line and
  finds agreement: the order is `applied`, no `master_data_mismatch`;
- the first invoice (500 seats x 120.00 = 60,000.00) bills contract `ctr-acme` (the
  emulator's lines carry their item's marks), so revenue books it on the same contract;
- the customer the platform wrote comes back as `customer.upserted` of `acct-acme` (its
  `cus_` id a reference) holding what the customer master said: like with like for the
  hub's ownership echo rule.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from finsync.bootstrap import build_engine, build_finance, start_stripe_poll_at
from finsync.demo.clock import SimClock
from finsync.demo.stack_config import SOURCE
from finsync.demo.stripe_api import StripeApi
from finsync.demo.stripe_steps import Capabilities
from finsync.domain import codec
from finsync.domain.errors import ExceptionClass
from finsync.domain.events import AnyEvent, ContractCreated, CustomerUpserted, InvoiceIssued
from finsync.domain.money import Money
from finsync.domain.status import EventStatus, OrderState
from finsync.hub.milestone import Milestone
from finsync.storage import cpq_log, exception_log, milestone_log
from finsync.storage.schema import events
from tests.integration.test_stripe_cpq_workflow import (
    ACCOUNT,
    CONTRACT,
    CUSTOMER,
    KEY_ENV,
    QUOTE,
    CpqBusiness,
    year_config,
)
from tests.stripekit import API_KEY, Localstripe


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, API_KEY)


def decoded(row: Mapping[str, Any]) -> AnyEvent:
    return codec.decode_event(row["type"], row["schema_version"], json.loads(row["payload"]))


def test_stripes_events_of_a_cpq_order_agree_with_it_under_the_version_check(
        localstripe: Localstripe, db_url: str, tmp_path: Path) -> None:
    localstripe.reset(None)
    config = year_config(tmp_path, localstripe.base_url, db_url, cpq=True)
    api = StripeApi(localstripe.base_url, API_KEY)
    now = datetime.now(UTC).replace(microsecond=0)
    engine = build_engine(config)
    finance = build_finance(config, engine=engine, clock=SimClock(now))
    try:
        business = CpqBusiness(api, Capabilities.probe(api), finance)
        start = business.open_account(now)
        start_stripe_poll_at(config, engine, SOURCE, int(start.timestamp()) - 1)
        business.subscribe()  # the order desk orders CPQ v1 from the Stripe port
        finance.hub.run_until_idle()  # the poller reads Stripe's events of it
        with engine.connect() as conn:
            rows = conn.execute(select(events).where(events.c.source == SOURCE)
                                .order_by(events.c.position)).mappings().all()
            order = cpq_log.order(conn, QUOTE)
            found = exception_log.for_correlation(conn, QUOTE)
            timeline = milestone_log.timeline(conn, QUOTE)
            thread = exception_log.for_correlation(conn, f"stripe:{business.ids.subscription}")
        # billing's books as reconciliation reads them (the mirror) name the same contract
        report = finance.recon.run(now.date())
        (values,) = [c for c in report.checks if c.name == "contract_value_vs_transaction_price"]
    finally:
        finance.ports.close()
        engine.dispose()

    contracts = [r for r in rows if r["type"] == ContractCreated.name]
    assert len(contracts) == 1
    (created,) = contracts
    assert (created["correlation_id"], created["aggregate_id"], created["aggregate_version"],
            created["status"]) == (QUOTE, CONTRACT, 1, EventStatus.ACCEPTED.value)
    contract = decoded(created)
    assert isinstance(contract, ContractCreated)
    assert contract.contract.customer_id == ACCOUNT
    assert [(ln.line_id, ln.quantity) for ln in contract.contract.lines] == [("ql-seats", 500)]
    assert contract.contract.refs.get("stripe") == business.ids.subscription

    # the version check found agreement: the order applied, nothing opened on the quote
    assert order is not None and order.state is OrderState.APPLIED
    mismatch = ExceptionClass.MASTER_DATA_MISMATCH.value
    assert [e for e in [*found, *thread] if e["class"] == mismatch] == []
    assert Milestone.CONTRACT_ACCEPTED.value in {m["name"] for m in timeline}

    assert [(i.ref, i.expected, i.actual) for i in values.items] == [
        (f"subscription_contract:{CONTRACT}", Money.of("60000.00", "USD"),
         Money.of("60000.00", "USD"))]

    # the first invoice bills the canonical contract and its line
    invoices = [decoded(r) for r in rows if r["type"] == InvoiceIssued.name]
    assert invoices and all(isinstance(i, InvoiceIssued) for i in invoices)
    first = invoices[0]
    assert isinstance(first, InvoiceIssued)
    assert first.invoice.contract_id == CONTRACT
    assert [ln.contract_line_id for ln in first.invoice.lines] == ["ql-seats"]
    assert str(first.invoice.total) == "60000.00 USD"

    # Stripe's customer is the customer master's, under its canonical id
    customers = [r for r in rows if r["type"] == CustomerUpserted.name]
    assert customers and {r["aggregate_id"] for r in customers} == {ACCOUNT}
    assert [r["aggregate_version"] for r in customers] == list(range(1, len(customers) + 1))
    latest = decoded(customers[-1])
    assert isinstance(latest, CustomerUpserted)
    echo = latest.customer
    assert echo.refs.get("stripe") == business.ids.customer
    # (not the currency: localstripe answers "eur" for a customer that pays by card, "an
    # arbitrary default"; Stripe's is null until it bills, then the subscription's, USD)
    assert (echo.name, echo.address, echo.billing_country, echo.billing_region,
            echo.tax_id, echo.legal_entity) == (
        CUSTOMER.name, CUSTOMER.address, CUSTOMER.billing_country, CUSTOMER.billing_region,
        CUSTOMER.tax_id, CUSTOMER.legal_entity)
