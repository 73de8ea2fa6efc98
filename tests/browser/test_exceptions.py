"""The exception queue in chromium, on the demo's year: the queue's figures are the CLI's; a
late payment into a closed period is worked from open to resolved (the controller asks for
a re-route, their own approval is refused with its reason shown, a second person's approval
carries it out); a bulk replay shows its progress; an auditor sees no action and is refused
one."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from finsync.auth.principal import EXCEPTIONS_ACT, EXCEPTIONS_APPROVE, FINANCE_READ, Principal
from finsync.bootstrap import Finance, build_billing_service, build_finance
from finsync.config import load_config
from finsync.demo.run import CONSOLE_ROLES
from finsync.storage.raw_log import RawIn
from tests import authkit
from tests.browserkit import (
    JOB_TIMEOUT_MS,
    RENDER_TIMEOUT_MS,
    Site,
    cli_json,
    logged_in,
    open_page,
    shot,
)

# The served pipeline's work (an event mapped, an exception resolved), waited for as long
# as a loaded machine needs: each wait ends as soon as it is done.
WAIT_S = 60.0
Late = Callable[[str, str], int]


@pytest.fixture(scope="module")
def finance(site: Site) -> Iterator[Finance]:
    built = build_finance(load_config(site.config))
    yield built
    built.dispose()


@pytest.fixture(scope="module")
def late(site: Site, finance: Finance) -> Late:
    """`late(payment_id, amount)`: a payment of the last invoice with something due,
    received on the last day of a closed period, sent as the billing system would; the id
    of the closed_period exception the served pipeline opens for it."""
    billing = build_billing_service(load_config(site.config), finance.hub.engine)
    target = [i for i in billing.invoices() if i.amount_due.amount > 0][-1]

    def send(payment_id: str, amount: str) -> int:
        assert Decimal(amount) <= target.amount_due.amount
        event = {"type": "payment.applied", "schema_version": 1, "source": "billing",
                 "source_event_id": f"console-{payment_id}",
                 "occurred_at": "2027-01-03T10:00:00+00:00",
                 "correlation_id": target.correlation_id, "causation_id": None,
                 "business_key": None,
                 "aggregate": {"type": "payment", "id": payment_id, "version": None},
                 "payload": {"payment": {
                     "id": payment_id, "customer_id": target.customer_id,
                     "legal_entity": "le_us", "currency": target.total.currency,
                     "amount": amount, "received_on": "2026-12-31",
                     "applications": [{"invoice_id": target.id, "amount": amount}]}}}
        finance.hub.intake.store([RawIn("canonical", json.dumps(event).encode(), {})])
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            found = [r for r in finance.triage.listing(exception_class="closed_period")
                     if f"payment:{payment_id}" in r["objects"]]
            if found:
                return int(found[0]["id"])
            time.sleep(0.1)
        raise AssertionError(f"no closed_period exception for {payment_id}")
    return send


def _detail(page: Any, exception_id: object) -> str:
    """Open one exception's detail; its status."""
    open_page(page, f"exceptions/{exception_id}")
    shown = page.locator(f'[data-testid=exception-detail][data-id="{exception_id}"]')
    shown.wait_for(timeout=RENDER_TIMEOUT_MS)
    return str(shown.get_attribute("data-status"))


def _status_becomes(page: Any, exception_id: int, status: str) -> bool:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if _detail(page, exception_id) == status:
            return True
        open_page(page, "approvals")
        time.sleep(0.2)
    return False


def _submit(form: Any, reason: str) -> None:
    form.locator("textarea[name=reason]").fill(reason)
    form.locator("button[type=submit]").click()


@pytest.fixture(scope="module")
def opened(late: Late) -> int:
    """A 5,000.00 USD late payment: above the approval threshold."""
    return late("pay_console_1", "5000.00")


def test_the_queue_shows_the_clis_figures(browser: Any, site: Site, shots: Path,
                                          opened: int) -> None:
    page = logged_in(browser, site, "controller")
    open_page(page, "exceptions")
    listed = cli_json(site, "controller", ["exceptions", "list"])
    if page.get_attribute(".page-body", "data-count") != str(listed["count"]):
        # The served pipeline (its daily reconciliation) opened one in between: read again.
        open_page(page, "approvals")
        open_page(page, "exceptions")
    assert page.get_attribute(".page-body", "data-count") == str(listed["count"])
    summary = page.inner_text("[data-testid=queue-summary]")
    for currency, amount in listed["at_stake"].items():
        whole, _, cents = amount.partition(".")
        assert f"{int(whole):,}.{cents} {currency}" in summary
    assert page.locator(f'[data-testid=exception-row][data-id="{opened}"]').count() == 1
    shot(page, shots, "exceptions")
    page.context.close()


def test_your_own_approval_is_refused_with_its_reason(browser: Any, site: Site, shots: Path,
                                                      opened: int) -> None:
    page = logged_in(browser, site, "controller")
    assert _detail(page, opened) == "open"
    shot(page, shots, "exception-detail")
    _submit(page.locator("form.action[data-action=reroute]"), "December is closed")
    page.wait_for_selector("[data-testid=outcome]:has-text('pending_approval')",
                           timeout=RENDER_TIMEOUT_MS)
    # The controller asked: approving it is refused, and the page says why.
    open_page(page, "approvals")
    card = page.locator(f"[data-testid=approval]:has-text('#{opened}')")
    assert "asked by you" in card.inner_text()
    _submit(card.locator("form.action").first, "looks right to me")
    card.locator(".action-status.refused").wait_for(timeout=RENDER_TIMEOUT_MS)
    assert "same_person" in card.locator(".action-status.refused").inner_text()
    shot(page, shots, "approvals")
    page.context.close()


@pytest.fixture
def asked(finance: Finance, opened: int) -> int:
    """The re-route of `opened` awaiting approval: the controller asked for it in the test
    above (or here, when this test runs alone)."""
    if finance.triage.show(opened)["status"] == "open":
        finance.triage.reroute(opened, Principal.of("controller", CONSOLE_ROLES["controller"]),
                               "December is closed")
    return opened


def test_a_second_person_approves_and_it_is_resolved(browser: Any, site: Site,
                                                     finance: Finance, asked: int) -> None:
    second = authkit.issue(finance.hub.engine, (FINANCE_READ, EXCEPTIONS_ACT,
                                                EXCEPTIONS_APPROVE), principal="cfo")
    other = logged_in(browser, dataclasses.replace(site, tokens={**site.tokens,
                                                                 "cfo": second}), "cfo")
    open_page(other, "approvals")
    card = other.locator(f"[data-testid=approval]:has-text('#{asked}')")
    assert "asked by you" not in card.inner_text()
    _submit(card.locator("form.action").first, "checked the remittance")
    other.wait_for_selector("[data-testid=outcome]:has-text('done')", timeout=RENDER_TIMEOUT_MS)
    # The payment is booked in the first open period: the exception is resolved.
    assert _status_becomes(other, asked, "resolved")
    other.context.close()


def test_a_bulk_replay_shows_its_progress(browser: Any, site: Site, late: Late) -> None:
    exception_id = late("pay_console_2", "500.00")
    page = logged_in(browser, site, "ar.clerk")
    open_page(page, "exceptions?class=closed_period")
    _submit(page.locator("[data-testid=replay] form.action"),
            "the ERP period question is settled")
    page.wait_for_selector(".job[data-finished=done]", timeout=JOB_TIMEOUT_MS)
    assert "replayed" in page.inner_text("[data-testid=replay-result]")
    # Below the threshold the clerk resolves it alone.
    _detail(page, exception_id)
    _submit(page.locator("form.action[data-action=resolve]"), "paid in January instead")
    page.wait_for_selector("[data-testid=outcome]:has-text('done')", timeout=RENDER_TIMEOUT_MS)
    assert page.get_attribute("[data-testid=exception-detail]", "data-status") == "resolved"
    page.context.close()


def test_an_auditor_sees_no_action_and_is_refused_one(browser: Any, site: Site) -> None:
    page = logged_in(browser, site, "auditor")
    open_page(page, "exceptions?status=all")
    first = page.locator("[data-testid=exception-row]").first.get_attribute("data-id")
    _detail(page, first)
    assert page.locator("form.action").count() == 0
    answer = page.evaluate("""async (id) => {
        const session = await (await fetch('/v1/session')).json();
        const r = await fetch(`/v1/exceptions/${id}/resolve`, {method: 'POST',
            headers: {'Content-Type': 'application/json', 'X-CSRF-Token': session.csrf_token},
            body: JSON.stringify({reason: 'not mine to do'})});
        return [r.status, (await r.json()).error.code];
    }""", first)
    assert answer == [403, "forbidden"]
    page.context.close()
