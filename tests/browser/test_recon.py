"""The Reconciliation page in chromium on the demo's year: the seven checks per entity as
`finsync reconcile` reports them, a read-only role without the run button (and refused by
the API), a run with its progress, and a drill into a break down to its documents."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.browserkit import (
    JOB_TIMEOUT_MS,
    RENDER_TIMEOUT_MS,
    Site,
    cli_json,
    logged_in,
    open_page,
    shot,
)

YEAR_END = "2026-12-31"
# The demo's payment dated in closed March, re-routed to April: as of March 31 its invoice
# is paid in billing and still open in the ERP.
MARCH_END = "2026-03-31"


def _show(page: Any, as_of: str) -> None:
    open_page(page, f"recon?as_of={as_of}")
    page.wait_for_selector(f'.page-body[data-as-of="{as_of}"] [data-testid=unexplained-breaks]',
                           timeout=RENDER_TIMEOUT_MS)


def _money(amount: str, currency: str) -> str:
    return f"{Decimal(amount):,.2f} {currency}"


def test_the_checks_are_the_cli_report_and_a_reader_cannot_run(browser: Any,
                                                                site: Site) -> None:
    report = cli_json(site, "revenue.accountant", ["reconcile", "--as-of", YEAR_END])
    page = logged_in(browser, site, "auditor")
    _show(page, YEAR_END)
    assert page.get_attribute(".page-body", "data-source") == "stored"
    for check in report["checks"]:
        row = page.locator(f'tr[data-check="{check["legal_entity"]}/{check["name"]}"] td')
        assert row.all_inner_texts()[:5] == [
            check["name"], str(check["items"]), str(len(check["breaks"])),
            str(check["unexplained"]), _money(check["variance"], check["currency"])]
    shown = page.inner_text("[data-testid=unexplained-breaks]")
    assert shown == f"{report['unexplained_breaks']} unexplained break(s)"
    # Read-only: no run button, and the action itself is refused.
    assert page.locator("[data-testid=recon-run]").count() == 0
    request = urllib.request.Request(
        f"{site.url}/v1/reconciliation/runs", method="POST",
        data=json.dumps({"as_of": YEAR_END}).encode(),
        headers={"authorization": f"Bearer {site.tokens['auditor']}",
                 "content-type": "application/json"})
    try:
        urllib.request.urlopen(request, timeout=5)
        raise AssertionError("the auditor ran reconciliation")
    except urllib.error.HTTPError as refused:
        assert refused.code == 403
        assert json.loads(refused.read())["error"]["code"] == "forbidden"
    # The CLI's run is in the audit trail as the person who ran it.
    assert ("revenue.accountant", YEAR_END) in _runs_audited(site)
    page.context.close()


def _runs_audited(site: Site) -> set[tuple[str, str]]:
    """(actor, as-of day) of every reconciliation run in the audit trail."""
    found: set[tuple[str, str]] = set()
    after: int | None = 0
    while after is not None:
        request = urllib.request.Request(
            f"{site.url}/v1/audit?after={after}&limit=500",
            headers={"authorization": f"Bearer {site.tokens['auditor']}"})
        with urllib.request.urlopen(request, timeout=5) as answer:
            page = json.loads(answer.read())
        found |= {(r["actor"], r["object_id"]) for r in page["records"]
                  if r["action"] == "reconciliation.run"}
        after = page["next_after"]
    return found


def test_run_reconciliation_shows_its_progress(browser: Any, site: Site, shots: Path) -> None:
    page = logged_in(browser, site, "ar.clerk")
    _show(page, YEAR_END)
    page.click("[data-testid=recon-run] button[type=submit]")
    page.wait_for_selector("[data-testid=recon-run-result]", timeout=JOB_TIMEOUT_MS)
    assert page.get_attribute(".job", "data-finished") == "done"
    assert "0 unexplained" in page.inner_text("[data-testid=recon-run-result]")
    assert ("ar.clerk", YEAR_END) in _runs_audited(site)
    shot(page, shots, "recon")
    page.context.close()


def test_drill_into_a_break_down_to_its_documents(browser: Any, site: Site,
                                                  shots: Path) -> None:
    page = logged_in(browser, site, "revenue.accountant")
    _show(page, MARCH_END)
    # A day nobody ran is computed, not recorded: the queue gets nothing from looking.
    assert page.get_attribute(".page-body", "data-source") == "computed"
    assert page.inner_text("[data-testid=unexplained-breaks]") == "2 unexplained break(s)"
    page.click("[data-testid='drill-le_us-billing_vs_erp_ar']")
    item = page.locator("a[data-testid^='item-invoice:']")
    item.wait_for(timeout=RENDER_TIMEOUT_MS)
    row = page.locator("tr", has=item).locator("td").all_inner_texts()
    assert row[2:4] == ["open_amount_differs", "unexplained"]
    assert row[4:7] == ["0.00 USD", "4,000.00 USD", "4,000.00 USD"]
    item.click()
    documents = page.locator("[data-testid=item-documents]")
    documents.wait_for(timeout=RENDER_TIMEOUT_MS)
    timeline = documents.locator("a[href^='#/timeline/']")
    assert timeline.first.inner_text() == "ord_acme_2026"
    systems = documents.locator("tbody tr td:first-child").all_inner_texts()
    assert {"ledger", "revrec"} <= set(systems)
    assert documents.locator("caption", has_text="The ERP's journal entry").count() == 1
    shot(page, shots, "recon-drill")
    page.context.close()
