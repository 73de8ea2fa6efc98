"""The Quote-to-cash page in chromium, on a copy of the demo's year (served apart) with two
CPQ contracts added through the served hub: one whose version billing applied, one held
before billing for a product the catalogue map does not know. What the page shows (counts
per state, each contract's latest order, one contract's versions, milestones, exceptions,
renewal baseline and catalogue version) is what `hub.cpq_status` and `hub.cpq_contracts`
say; the overview's "CPQ orders not applied" links to the page."""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from finsync.bootstrap import Finance, build_billing_service, build_finance
from finsync.config import load_config
from finsync.connectors.embedded.billing import OutboxPublisher
from finsync.domain import codec
from finsync.domain.events import CommercialContractApproved
from finsync.domain.status import OrderState
from finsync.hub import cpq_contracts, cpq_status
from finsync.storage.raw_log import RawIn
from tests.browserkit import RENDER_TIMEOUT_MS, Site, logged_in, open_page, served, shot
from tests.builders import envelope
from tests.q2ckit import contract, line, seats

WAIT_S = 30.0
START, END = date(2027, 1, 1), date(2028, 1, 1)
APPLIED, HELD = "Q2C-APPLIED", "Q2C-HELD"
# The milestones the page lists for each version, in its order.
SHOWN = ("order_accepted", "contract_accepted", "invoice_posted", "payment_applied",
         "revenue_schedule_created")


@pytest.fixture(scope="module")
def own_site(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A copy of the demo's site served apart: the contracts seeded here put an invoice
    into billing and the books, which the other pages' tests must not see."""
    workdir = tmp_path_factory.mktemp("console-q2c")
    shutil.copytree(site.workdir, workdir, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("finsync.db*", "serve.log"))
    source = sqlite3.connect(site.workdir / "var" / "finsync.db")
    copy = sqlite3.connect(workdir / "var" / "finsync.db")
    try:
        source.backup(copy)  # a consistent copy while the demo's site runs
    finally:
        copy.close()
        source.close()
    database_url = f"sqlite:///{workdir / 'var' / 'finsync.db'}"
    with served(workdir, database_url) as (url, process):
        yield Site(url, workdir, workdir / "finsync.toml", database_url, site.tokens, process)


@pytest.fixture(scope="module")
def finance(own_site: Site) -> Iterator[Finance]:
    built = build_finance(load_config(own_site.config))
    try:
        _seed(own_site, built)
        yield built
    finally:
        built.dispose()


def _seed(site: Site, finance: Finance) -> None:
    """CPQ approves two contracts for a customer billing knows, as the CPQ source would
    send them; the served pipeline orders them (one applied, one held)."""
    billing = build_billing_service(load_config(site.config), finance.hub.engine)
    customer = billing.invoices()[0].customer_id
    # A term from 1 January 2027 (the demo closes all of 2026): billing's first invoice
    # (25 seats x 120.00 = 3,000.00) posts in an open period.
    versions = (
        contract(1, seats(25, start=START, end=END), contract_id=APPLIED, effective=START,
                 start=START, end=END),
        contract(1, seats(5, start=START, end=END),
                 line("L-x", "MYSTERY-ADDON", 2, "10.00", start=START, end=END),
                 contract_id=HELD, effective=START, start=START, end=END))
    raws = []
    for version in versions:
        mine = replace(version, sold_to_id=customer, bill_to_id=customer)
        event = CommercialContractApproved(mine)
        ref = event.aggregate()
        raws.append(RawIn("canonical", json.dumps(envelope(
            event.name, f"cpq-{ref.id}-{ref.version}", (ref.type, ref.id, ref.version),
            codec.encode_event(event), correlation_id=mine.quote_id,
            source="cpq")).encode(), {}))
    finance.hub.intake.store(raws)
    _wait(finance, {APPLIED: OrderState.SENT, HELD: OrderState.HELD})
    # Billing's own events (its contract, the invoice) reach the hub as its webhooks would
    # (the demo's site has no pump): the version check finds billing's contract equal.
    OutboxPublisher(billing).publish(lambda bodies: finance.hub.intake.store(
        [RawIn("billing", body, {}) for body in bodies]))
    _wait(finance, {APPLIED: OrderState.APPLIED, HELD: OrderState.HELD})


def _wait(finance: Finance, wanted: dict[str, OrderState]) -> None:
    """Until each contract's latest order is in the state wanted (the served pipeline)."""
    deadline = time.monotonic() + WAIT_S
    found: dict[str, OrderState | None] = {}
    while time.monotonic() < deadline:
        found = {c: _latest(finance, c) for c in wanted}
        if found == wanted:
            return
        time.sleep(0.2)
    raise AssertionError(f"the served hub did not order the CPQ versions: {found}")


def _latest(finance: Finance, contract_id: str) -> OrderState | None:
    status = cpq_status.contract_status(finance.hub.engine, contract_id)
    return None if status is None else status.versions[-1].order_state


def _detail_shown(page: Any, contract_id: str) -> list[dict[str, Any]]:
    """What the page shows of each version of `contract_id`."""
    open_page(page, f"quote-to-cash/{contract_id}")
    page.locator(f'[data-testid=cpq-contract][data-contract="{contract_id}"]').wait_for(
        timeout=RENDER_TIMEOUT_MS)
    shown = []
    for row in page.locator("[data-testid=cpq-versions] tbody tr").all():
        shown.append({
            "quote_id": row.get_attribute("data-quote"),
            "order_state": row.get_attribute("data-order-state") or None,
            "milestones": [m.get_attribute("data-milestone") for m in row.locator(
                '[data-milestone][data-reached="true"]').all()],
            "exceptions": [int(str(e.get_attribute("data-exception")))
                           for e in row.locator("[data-exception]").all()],
            "links": [e.get_attribute("href") for e in row.locator(
                "[data-exception] a").all()]})
    return shown


def _expected(status: cpq_status.ContractStatus) -> list[dict[str, Any]]:
    return [{"quote_id": v.quote_id,
             "order_state": None if v.order_state is None else v.order_state.value,
             "milestones": [name for name in SHOWN
                            if name in {m.name for m in v.milestones}],
             "exceptions": [e.id for e in v.exceptions],
             "links": [f"#/exceptions/{e.id}" for e in v.exceptions]}
            for v in status.versions]


def test_the_page_shows_what_cpq_status_says(browser: Any, own_site: Site,
                                              finance: Finance, shots: Path) -> None:
    engine = finance.hub.engine
    page = logged_in(browser, own_site, "controller")
    # The overview's KPI: held + refused + failed + mismatch, linked to the page.
    listed = cpq_contracts.contracts(engine)
    kpi = page.locator("[data-testid=cpq-not-applied]").first
    assert kpi.inner_text() == str(listed.not_applied)
    assert listed.not_applied >= 1  # the held order at least
    open_page(page, "quote-to-cash")
    for state, count in listed.counts:
        assert page.locator(f"[data-testid=cpq-count-{state.value}]").inner_text() == str(
            count)
    rows = page.locator("[data-testid=cpq-contracts] tbody tr")
    shown = {r.get_attribute("data-contract"): r.get_attribute("data-order-state")
             for r in rows.all()}
    assert shown == {r.contract_id: (r.order_state.value if r.order_state else "")
                     for r in listed.rows}
    # The held contract's money at stake: 5 seats x 120.00 + 2 x 10.00 = 620.00 USD.
    held_row = page.locator(f'[data-testid=cpq-contracts] tr[data-contract="{HELD}"]')
    assert held_row.locator("[data-testid=cpq-at-stake]").inner_text() == "620.00 USD"
    assert (shown[APPLIED], shown[HELD]) == ("applied", "held")

    applied = cpq_status.contract_status(engine, APPLIED)
    assert applied is not None
    assert _detail_shown(page, APPLIED) == _expected(applied)
    assert "order_accepted" in _expected(applied)[0]["milestones"]
    baseline = page.locator("[data-testid=cpq-baseline]")
    assert applied.baseline is not None
    assert baseline.get_attribute("data-cpq-version") == str(applied.baseline.cpq_version)
    (renews,) = applied.baseline.lines  # 25 seats at 120.00 USD
    shown_line = baseline.locator("tbody tr").first.inner_text()
    assert renews.product_code in shown_line and str(renews.quantity) in shown_line
    assert f"{renews.net_unit_price.amount} {renews.net_unit_price.currency}" in shown_line
    assert page.locator("[data-testid=cpq-catalog-version]").inner_text().endswith(
        str(applied.catalog_version))
    shot(page, shots, "quote-to-cash-applied")

    held = cpq_status.contract_status(engine, HELD)
    assert held is not None
    found = _detail_shown(page, HELD)
    assert found == _expected(held)
    assert found[0]["exceptions"], "the held order's master_data_mismatch is listed"
    detail = page.locator("[data-testid=cpq-versions] tbody tr").first.inner_text()
    assert "MYSTERY-ADDON" in detail  # why it is held names the product
    assert "master_data_mismatch" in detail
    assert page.locator("[data-testid=cpq-baseline]").get_attribute(
        "data-cpq-version") is None  # nothing applied: no baseline yet
    shot(page, shots, "quote-to-cash-held")

    open_page(page, "quote-to-cash?state=held")
    held_rows = page.locator("[data-testid=cpq-contracts] tbody tr").all()
    assert HELD in [r.get_attribute("data-contract") for r in held_rows]
    assert APPLIED not in [r.get_attribute("data-contract") for r in held_rows]
    page.context.close()
