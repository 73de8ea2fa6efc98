"""The overview in chromium, on the demo's year: the money at stake by class and the
metrics the CLI reports for the same data (`finsync status`, `finsync metrics`), the charts
drawn with their data tables, and the page as a read-only auditor sees it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.browserkit import RENDER_TIMEOUT_MS, Site, cli_json, logged_in, shot

DRAWN = "() => [...document.querySelectorAll('.chart')].every(c => c.dataset.drawn === 'true')"


def _cells(page: Any, selector: str) -> list[list[str]]:
    return [row.locator("td").all_inner_texts() for row in page.locator(selector).all()]


def test_the_overview_shows_what_the_cli_reports(browser: Any, site: Site,
                                                 shots: Path) -> None:
    page = logged_in(browser, site, "controller")
    page.wait_for_function(DRAWN, timeout=RENDER_TIMEOUT_MS)
    status = cli_json(site, "controller", ["status"])["unresolved_exceptions"]
    metrics = cli_json(site, "controller", ["metrics"])

    assert page.inner_text('[data-testid="unresolved-count"]') == str(status["count"])
    shown = {row[0]: row for row in _cells(page, "tr[data-class]")}
    assert set(shown) == set(status["by_class"])
    for name, figures in status["by_class"].items():
        assert shown[name][1] == str(figures["count"]), name
        for currency, amount in figures["at_stake"].items():
            # Amounts as the page formats them: grouped, the currency's places, its code.
            whole, _, cents = amount.partition(".")
            assert f"{int(whole):,}.{cents} {currency}" in shown[name], (name, currency)
    rows = {row.get_attribute("data-metric"): row.locator("td").nth(1).inner_text()
            for row in page.locator("tr[data-metric]").all()}
    assert rows["unmatched_ar"] == str(metrics["unmatched_ar"]["total"])
    assert rows["schedule_failures"] == str(metrics["revenue_schedule_failures"])
    posting = metrics["invoice_posting_success"]
    assert f"{posting['posted']} posted, {posting['refused']} refused" in rows["posting_success"]
    for line in metrics["reconciliation_variance"]:
        assert line["legal_entity"] in rows["recon_variance"]
    entities = [row[0] for row in _cells(page, "tr[data-entity]")]
    assert entities == ["le_us", "le_eu"]
    # Every chart has its data as a table and a CSV download.
    assert page.locator("figure.chart-block").count() == 3
    assert page.locator("figure.chart-block details table").count() == 3
    for name in ("at-stake-by-class", "at-stake-by-age", "variance-trend"):
        assert page.locator(f'a[download="{name}.csv"]').count() >= 1, name
    shot(page, shots, "overview")
    page.context.close()


def test_invoices_held_for_tax_are_shown_and_lead_to_their_exceptions(
        browser: Any, site: Site, shots: Path) -> None:
    page = logged_in(browser, site, "controller")
    held = cli_json(site, "controller", ["status"])["held_for_tax"]
    # The seeded draft: 2,400.00 USD before tax, held while the tax engine was down.
    assert held == {"count": 1, "at_stake": {"USD": "2400.00"},
                    "exception_class": "tax_failure"}
    assert page.inner_text('[data-testid="held-for-tax-count"]') == "1"
    assert page.inner_text('[data-testid="held-for-tax-link"]') == "1 invoice held"
    assert _cells(page, 'tr[data-held-currency="USD"]') == [["USD", "2,400.00 USD"]]
    page.locator('section[aria-label="Invoices held for tax"]').screenshot(
        path=str(shots / "overview-held-for-tax.png"))
    page.click('[data-testid="held-for-tax-link"]')
    page.wait_for_selector('main[data-rendered="exceptions"]', timeout=RENDER_TIMEOUT_MS)
    page.wait_for_selector("[data-testid=exception-row]", timeout=RENDER_TIMEOUT_MS)
    rows = page.locator("[data-testid=exception-row]")
    assert rows.count() == 1
    assert "hold_demo_1" in rows.first.inner_text()
    page.context.close()


def test_time_to_first_render_and_a_reader_sees_no_action(browser: Any, site: Site) -> None:
    page = logged_in(browser, site, "auditor")
    started = time.monotonic()
    page.reload()
    page.wait_for_selector('main[data-rendered="overview"]', timeout=RENDER_TIMEOUT_MS)
    rendered = time.monotonic() - started
    print(f"overview: first render {rendered * 1000:.0f} ms (bench/overview.py: at scale)")
    # No action control (the charts' own tool buttons aside).
    assert page.locator("main form, main button:not(.chart *)").count() == 0
    assert page.inner_text('[data-testid="pipeline-health"]') == "healthy"
    page.context.close()
