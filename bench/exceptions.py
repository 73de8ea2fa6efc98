#!/usr/bin/env python3
"""The console's exception queue as the queue grows: its JSON reads and the time to first
render of its pages in chromium, on the demo's year and again with N unresolved exceptions.

A benchmark, not a test: it prints figures.

    .venv/bin/python bench/exceptions.py [--exceptions 100000] [--repeat 5]

The demo's year is run into a temporary folder (SQLite) and served by `finsync serve`'s app
in its own process, pipeline running (`tests/browserkit.served`). The exceptions are
bulk-inserted: every class the queue filters on, open or retrying, up to 200 days old, in
USD, EUR and JPY, half of them reconciliation breaks of either entity (the entity filter
reads their fingerprint), amounts up to 100,000 in each currency. Figures: **HTTP** (the
median of `--repeat` requests) of the queue (the page's 100 rows, the API's 500, and
filtered by entity and by currency and amount), one exception's detail and the approvals
inbox; **first render** of each page (when `main[data-rendered]` is set, read in the page:
a new tab each visit) and, of it, the page's own JSON reads (resource timing), beside the
console's shell alone (the log-in page).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from sqlalchemy import create_engine, insert  # noqa: E402

from finsync.demo.run import run_demo  # noqa: E402
from finsync.storage.schema import exceptions  # noqa: E402
from tests import authkit  # noqa: E402
from tests.browserkit import CHROMIUM, CHROMIUM_ARGS, ROLES, served  # noqa: E402

console = Console()
BATCH = 5_000
CLASSES = ("closed_period", "reconciliation_break", "master_data_mismatch", "tax_failure",
           "sequencing_error")
READS = ("/v1/exceptions/queue?limit=100", "/v1/exceptions/queue",
         "/v1/exceptions/queue?entity=le_us&limit=100",
         "/v1/exceptions/queue?currency=USD&amount_min=50000&limit=100",
         "/v1/exceptions/2/detail", "/v1/approvals")
PAGES = ("exceptions", "exceptions/2", "approvals")
# When the page says it has rendered, read in the page itself (a round trip of the test's
# driver on a loaded machine would add its own delay to the figure).
_RENDERED_AT = """
window.__rendered = {};
new MutationObserver((changes) => {
  for (const change of changes) {
    const name = change.target.dataset && change.target.dataset.rendered;
    if (name && !(name in window.__rendered)) window.__rendered[name] = performance.now();
  }
}).observe(document, {subtree: true, attributes: true, attributeFilter: ["data-rendered"]});
"""
_RENDER_MS = "(name) => window.__rendered[name]"
# The page's own reads (not the session check), from the browser's resource timing.
_OWN_READS = ("() => performance.getEntriesByType('resource')"
              ".filter(e => /\\/v1\\/(exceptions|approvals)/.test(e.name))"
              ".reduce((sum, e) => sum + e.duration, 0)")


def grow(database: str, count: int) -> None:
    """`count` unresolved exceptions, inserted in batches."""
    rng = random.Random(7)
    now = datetime.now(UTC)
    engine = create_engine(database)
    rows = []
    for i in range(count):
        klass = CLASSES[i % len(CLASSES)]
        entity = rng.choice(("le_us", "le_eu"))
        rows.append({
            "class": klass, "status": rng.choice(("open", "open", "retrying")),
            "fingerprint": f"recon:{entity}:bench:{i}" if klass == "reconciliation_break"
            else f"bench:{i}",
            "amount_minor": rng.randrange(1, 10_000_000),
            "currency": rng.choice(("USD", "EUR", "JPY")),
            "correlation_id": f"bench_{i % 500}", "objects": json.dumps([f"invoice:b{i}"]),
            "summary": f"bench exception {i}",
            "opened_at": now - timedelta(seconds=rng.randrange(0, 200 * 86400)),
            "updated_at": now, "occurrences": 1})
    with engine.begin() as conn:
        for start in range(0, count, BATCH):
            conn.execute(insert(exceptions), rows[start:start + BATCH])
    engine.dispose()


def http_ms(url: str, token: str, path: str, repeat: int) -> tuple[float, int]:
    """The median ms of `repeat` requests, and the answer's size."""
    times, size = [], 0
    for _ in range(repeat):
        request = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {token}"})
        started = time.perf_counter()
        with urllib.request.urlopen(request) as answer:
            size = len(answer.read())
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), size


def first_render(browser: Any, url: str, token: str, repeat: int) -> dict[str, float]:
    """The median ms to first render of each page, and of the shell alone."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(_RENDERED_AT)
    login = context.new_page()
    shell = []
    for _ in range(repeat):
        login.goto(url + "/", wait_until="commit")
        login.wait_for_selector('main[data-rendered="login"]', timeout=120_000)
        shell.append(float(login.evaluate(_RENDER_MS, "login")))
    login.fill("#login-token", token)
    login.click("#login-form button[type=submit]")
    login.wait_for_selector('main[data-rendered="overview"]', timeout=120_000)
    found = {"(shell: the log-in page)": statistics.median(shell)}
    for path in PAGES:
        name = path.split("/")[0]
        times, reads = [], []
        for _ in range(repeat):
            page = context.new_page()
            page.goto(f"{url}/#/{path}", wait_until="commit")
            page.wait_for_selector(f'main[data-rendered="{name}"]', timeout=120_000)
            times.append(float(page.evaluate(_RENDER_MS, name)))
            reads.append(float(page.evaluate(_OWN_READS)))
            page.close()
        found[f"#/{path}"] = statistics.median(times)
        found[f"#/{path}: of which its JSON reads"] = statistics.median(reads)
    context.close()
    return found


def measure(workdir: Path, browser: Any, repeat: int) -> dict[str, str]:
    database = f"sqlite:///{workdir / 'var' / 'finsync.db'}"
    engine = create_engine(database)
    token = authkit.issue(engine, ROLES["controller"] + ROLES["auditor"], principal="bench")
    engine.dispose()
    with served(workdir, database) as (url, _process):
        figures = {}
        for path in READS:
            ms, size = http_ms(url, token, path, repeat)
            figures[f"GET {path}"] = f"{ms:,.0f} ms ({size / 1024:,.0f} KiB)"
        for page, ms in first_render(browser, url, token, repeat).items():
            figures[f"first render {page}"] = f"{ms:,.0f} ms"
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exceptions", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as folder, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        demo = Path(folder) / "demo"
        run_demo(demo, keep=True)
        small = measure(demo, browser, args.repeat)
        grow(f"sqlite:///{demo / 'var' / 'finsync.db'}", args.exceptions)
        large = measure(demo, browser, args.repeat)
        browser.close()
    table = Table(title=f"the exception queue: median of {args.repeat}")
    for column in ("figure", "demo", f"+ {args.exceptions:,} exceptions"):
        table.add_column(column, justify="left" if column == "figure" else "right")
    for figure, value in small.items():
        table.add_row(figure, value, large[figure])
    console.print(table)


if __name__ == "__main__":
    main()
