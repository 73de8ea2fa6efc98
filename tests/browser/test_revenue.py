"""The Revenue and AR pages in chromium on the demo's year: the waterfall, RPO and aging a
revenue accountant and an AR clerk see are the figures the CLI prints for the same books;
the roll-forward foots; a contract's schedule shows its amendment with its ASC 606 reason."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.browserkit import Site, cli_json, logged_in, open_page, shot

YEAR = "entity=le_us&from=2026-01&to=2026-12&as_of=2026-12-31"
AR_DAY = "2027-02-15"  # the renewal invoice of 2027-01-01 is open and past due


def _amount(text: str) -> Decimal:
    """A cell as the page shows it ("12,460.27 USD") as a decimal."""
    return Decimal(text.split(" ")[0].replace(",", "") or "0")


def _cells(page: Any, selector: str) -> list[list[str]]:
    return [[cell.strip() for cell in row] for row in page.eval_on_selector_all(
        selector, "rows => rows.map(r => [...r.cells].map(c => c.textContent))")]


def test_waterfall_roll_forward_and_rpo_are_the_clis(browser: Any, site: Site,
                                                      shots: Path) -> None:
    page = logged_in(browser, site, "revenue.accountant")
    open_page(page, f"revenue?{YEAR}")
    page.wait_for_selector(".chart[data-drawn=true]")
    cli = cli_json(site, "revenue.accountant",
                   ["revrec", "waterfall", "-e", "le_us", "--from", "2026-01", "--to", "2026-12"])
    shown = {row[0]: _amount(row[1]) for row in _cells(
        page, "[data-testid=waterfall] tbody tr")}
    assert shown == {m: Decimal(v) for m, v in cli["revenue"]["USD"].items()}
    assert "Every month foots" in page.inner_text("[data-testid=rollforward-status]")
    rpo = cli_json(site, "revenue.accountant",
                   ["revrec", "rpo", "-e", "le_us", "--as-of", "2026-12-31"])["rpo"]
    rows = _cells(page, "[data-testid=rpo] tbody tr")
    assert [[r[0], *(_amount(c) for c in r[1:])] for r in rows] == [
        [r["currency"], *(Decimal(r[k]) for k in ("current", "non_current", "total"))]
        for r in rpo]
    shot(page, shots, "revenue")
    page.context.close()


def test_contract_schedule_shows_the_amendment_and_its_reason(browser: Any, site: Site,
                                                              shots: Path) -> None:
    page = logged_in(browser, site, "revenue.accountant")
    open_page(page, f"revenue?{YEAR}")
    # The demo's one contract, amended three times in the year.
    contract = page.eval_on_selector("select[name=contract] option[value^=con_]", "o => o.value")
    page.select_option("select[name=contract]", contract)
    page.click("text=Open schedule")
    page.wait_for_selector(f"[data-testid=schedule][data-contract={contract}]")
    modifications = _cells(page, "[data-testid=modification]")
    assert len(modifications) >= 2
    for modification in modifications:
        assert modification[4].startswith("606-10-25-"), modification
        assert modification[5]  # the reason, in words
    shot(page, shots, "revenue-contract")
    page.context.close()


def test_aging_subledgers_and_credits_are_the_clis(browser: Any, site: Site,
                                                   shots: Path) -> None:
    page = logged_in(browser, site, "ar.clerk")
    open_page(page, f"ar?entity=le_us&as_of={AR_DAY}")
    (cli,) = cli_json(site, "ar.clerk",
                      ["ledger", "aging", "-e", "le_us", "--as-of", AR_DAY]).values()
    rows = _cells(page, "[data-testid=aging] tbody tr[data-customer]:not([data-customer='*'])")
    buckets = ["current", "1-30", "31-60", "61-90", "90+", "credits", "total"]
    assert sorted([r[0], *(_amount(c) for c in r[1:])] for r in rows) == sorted(
        [c["customer"], *(Decimal(c[b]) for b in buckets)] for c in cli["customers"])
    subledgers = _cells(page, "[data-testid=subledgers] tbody tr")
    mine = {r[1]: _amount(r[2]) for r in subledgers if r[0] == "le_us"}
    assert mine == {k: Decimal(v["subledger"]) for k, v in cli["subledgers"].items()}
    assert all(r[-1] == "yes" for r in subledgers)
    assert sum(_amount(r[-1]) for r in rows) > 0  # something is open: the test compares
    shot(page, shots, "ar")
    page.context.close()
