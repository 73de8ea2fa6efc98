#!/usr/bin/env python3
"""Time to first render of each console page, in chromium, on the demo's data and on a store
of N invoices.

A benchmark, not a test: it prints figures. Each page is opened by navigating to its address
in a logged-in browser tab; its time is `performance.now()` when the page has rendered
(`main[data-rendered]`, and every chart drawn): the page's script, its session check, every
JSON API call it makes and the drawing, from the start of the navigation. The limit measured
in the same run is the console's shell alone: the log-in page, which loads the same script
and asks for nothing.

    .venv/bin/python bench/console.py [--invoices 100000] [--repeats 3]

The store of N invoices is the demo's year and N synthetic invoices of three lines, three in
four paid, posted to the demo's embedded ledger in batches through the ledger
port (`bench/ledger.py`'s documents), into its 2026 periods (reopened for the load, closed
again after, each change logged). The revenue, reconciliation and exception pages read the
demo's contracts and runs on both stores; AR, aging and the ERP's figures read every invoice.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(Path(__file__).resolve().parent), str(ROOT)]

import ledger as documents  # noqa: E402 - bench/ledger.py, by name (bench/README.md)
from rich.console import Console  # noqa: E402
from rich.progress import Progress  # noqa: E402
from rich.table import Table  # noqa: E402

from finsync.bootstrap import build_finance, build_ledger_service  # noqa: E402
from finsync.config import load_config  # noqa: E402
from finsync.connectors.ports import Posting  # noqa: E402
from finsync.demo.cpq import UPGRADE  # noqa: E402
from finsync.demo.run import run_demo  # noqa: E402
from finsync.domain.events import InvoiceIssued, PaymentApplied  # noqa: E402
from finsync.domain.journal import PeriodStatus  # noqa: E402
from tests import authkit  # noqa: E402
from tests.browserkit import CHROMIUM, CHROMIUM_ARGS, ROLES, served  # noqa: E402

console = Console()
PAGES = ("overview", "exceptions", "recon", f"timeline/{UPGRADE}", "revenue", "ar", "close")
SHELL = "(shell: the log-in page)"
BATCH = 100  # the embedded ledger port's batch_size in the shipped configuration
ACTOR = "bench.loader"


def grow(workdir: Path, invoices: int) -> int:
    """Post `invoices` synthetic invoices (and payments for three in four) to the demo's
    ERP; the number posted."""
    config = load_config(workdir / "finsync.toml")
    finance = build_finance(config)
    service = build_ledger_service(config, finance.hub.engine)
    port = finance.ports.ledger()
    closed = [p for p in service.periods(documents.ENTITY) if p.status is PeriodStatus.CLOSED]
    for period in closed:
        service.set_period_status(documents.ENTITY, period.name, PeriodStatus.OPEN, ACTOR,
                                  "bench/console.py loads a large store")
    wanted = invoices
    try:
        with Progress(console=console) as progress:
            task = progress.add_task("posting invoices and payments", total=wanted)
            for start in range(0, wanted, BATCH):
                batch = [documents.make_invoice(i)
                         for i in range(start, min(wanted, start + BATCH))]
                _post(port, [Posting(InvoiceIssued(inv), documents.context(f"bi_{inv.id}", 0))
                             for inv in batch])
                _post(port, [Posting(PaymentApplied(documents.make_payment(k, inv)),
                                     documents.context(f"bp_{inv.id}", 0))
                             for k, inv in enumerate(batch, start) if k % 4])
                progress.advance(task, len(batch))
    finally:
        for period in closed:
            service.set_period_status(documents.ENTITY, period.name, PeriodStatus.CLOSED,
                                      ACTOR, "loaded")
        finance.dispose()
    return wanted


def _post(port: Any, postings: list[Posting]) -> None:
    for outcome in port.post_batch(postings):
        if isinstance(outcome, Exception):
            raise outcome


Visit = tuple[float, float]  # ms from the navigation's start: rendered, charts drawn


def first_render(browser: Any, url: str, token: str, repeats: int) -> dict[str, list[Visit]]:
    """Per page (and the shell alone), each visit's ms to first render and to every chart
    drawn, as the page itself marked them (`data-rendered-at`, `data-drawn-at`)."""
    from playwright.sync_api import Page

    context = browser.new_context(viewport={"width": 1280, "height": 900})

    def timed(page: Page, address: str, selector: str) -> Visit:
        page.goto("about:blank")  # a new document each visit: a hash change alone is none
        page.goto(address, wait_until="commit")
        page.wait_for_selector(selector, timeout=120_000)
        page.wait_for_function("() => [...document.querySelectorAll('.chart')]"
                               ".every(c => c.dataset.drawn === 'true')", timeout=120_000)
        marks = page.evaluate("() => [Number(document.getElementById('page').dataset"
                              ".renderedAt), ...[...document.querySelectorAll('.chart')]"
                              ".map(c => Number(c.dataset.drawnAt))]")
        return float(marks[0]), float(max(marks))

    login = context.new_page()
    shell = [timed(login, url + "/", 'main[data-rendered="login"]') for _ in range(repeats)]
    login.fill("#login-token", token)
    login.click("#login-form button[type=submit]")
    login.wait_for_selector('main[data-rendered="overview"]', timeout=120_000)
    times = {SHELL: shell}
    for path in PAGES:
        name = path.split("/")[0]
        page = context.new_page()
        times[path] = [timed(page, f"{url}/#/{path}", f'main[data-rendered="{name}"]')
                       for _ in range(repeats)]
        page.close()
    context.close()
    return times


def measure(workdir: Path, browser: Any, repeats: int) -> dict[str, list[Visit]]:
    from sqlalchemy import create_engine

    database = f"sqlite:///{workdir / 'var' / 'finsync.db'}"
    engine = create_engine(database)
    token = authkit.issue(engine, ROLES["controller"] + ROLES["auditor"], principal="bench")
    engine.dispose()
    with served(workdir, database) as (url, _process):
        return first_render(browser, url, token, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--invoices", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    results: dict[str, dict[str, list[Visit]]] = {}
    with tempfile.TemporaryDirectory() as folder, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        demo = Path(folder) / "demo"
        run_demo(demo, keep=True)
        results["demo"] = measure(demo, browser, args.repeats)
        started = time.perf_counter()
        posted = grow(demo, args.invoices)
        console.print(f"posted {posted} invoices (and payments) in "
                      f"{time.perf_counter() - started:.0f} s")
        results["large"] = measure(demo, browser, args.repeats)
        browser.close()
    _print(results, args.invoices)


def _print(results: dict[str, dict[str, list[Visit]]], invoices: int) -> None:
    table = Table(title="console: ms from navigation to first render, and to every chart "
                  "drawn (median of visits; the first visit in brackets); ratio: first "
                  "render to the shell alone's")
    for column in ("page", "demo: render", "charts", "ratio", f"{invoices:,} inv.: render",
                   "charts", "ratio"):
        table.add_column(column, justify="left" if column == "page" else "right")
    shells = {store: statistics.median(v[0] for v in times[SHELL])
              for store, times in results.items()}
    for page in results["demo"]:
        row = [page]
        for store in ("demo", "large"):
            visits = results[store][page]
            render = statistics.median(v[0] for v in visits)
            charts = statistics.median(v[1] for v in visits)
            row += [f"{render:,.0f} ({visits[0][0]:,.0f})", f"{charts:,.0f}",
                    f"{render / shells[store]:.1f}x"]
        table.add_row(*row)
    console.print(table)


if __name__ == "__main__":
    main()
