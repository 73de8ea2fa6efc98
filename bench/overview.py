#!/usr/bin/env python3
"""The console's overview on the demo's year, then on a store of 100,000 invoices: the time
to compute it (in process), to answer `GET /v1/overview` (over HTTP, from `finsync serve`'s
app), and to first render the page in chromium.

A benchmark, not a test: it prints figures and checks only that the overview counts what
was added.

    .venv/bin/python bench/overview.py [--invoices 100000] [--exceptions 2000] [--repeat 5]

1. The demo's year is run into a temp folder (`finsync demo --keep`, SQLite) and served by
   `finsync serve`'s app in a process of its own, pipeline running (`tests/browserkit.py`).
2. Each figure is measured on it: **view** (`views.overview.overview`, in this process),
   **HTTP** (`GET /v1/overview`, a keep-alive client), **first render** (chromium: from a
   reload of the console to `main[data-rendered="overview"]`, the page drawn with its tables)
   and **charts drawn** (to every plotly chart drawn); the median of `--repeat` runs.
3. Then `--invoices` accepted `invoice.issued` events with their done ledger deliveries
   (occurred over the demo's year, posted a few hours later), `--exceptions` unresolved
   exceptions of every class and age with money at stake, and a reconciliation run per
   entity and day of the last year are bulk-inserted into the same database, and step 2 is
   measured again.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert  # noqa: E402

from finsync.auth.principal import FINANCE_READ  # noqa: E402
from finsync.bootstrap import build_finance  # noqa: E402
from finsync.config import load_config  # noqa: E402
from finsync.demo.run import run_demo  # noqa: E402
from finsync.domain.errors import ExceptionClass  # noqa: E402
from finsync.domain.money import Money  # noqa: E402
from finsync.storage.db import make_engine  # noqa: E402
from finsync.storage.recon_log import record  # noqa: E402
from finsync.storage.schema import deliveries, events, exceptions  # noqa: E402
from finsync.views.overview import overview  # noqa: E402
from finsync.views.services import build_services  # noqa: E402
from tests import authkit  # noqa: E402
from tests.browserkit import CHROMIUM, HEIGHT, RENDER_TIMEOUT_MS, served  # noqa: E402

BATCH = 5000
DRAWN = "() => [...document.querySelectorAll('.chart')].every(c => c.dataset.drawn === 'true')"


def median_ms(call: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def invoices(url: str, n: int) -> None:
    """N accepted invoices of the demo's year and their done ledger deliveries."""
    engine = make_engine(url)
    year = datetime(2026, 1, 1, tzinfo=UTC)
    for first in range(0, n, BATCH):
        ids = range(first, min(n, first + BATCH))
        occurred = [year + timedelta(minutes=5 * i % (365 * 24 * 60)) for i in ids]
        event_rows = [{
            "event_id": f"evt_bench_{i:09d}", "type": "invoice.issued", "schema_version": 1,
            "source": "billing", "source_event_id": f"inv_bench_{i:09d}-issued",
            "business_key": None, "occurred_at": at, "received_at": at,
            "correlation_id": f"corr_bench_{i:09d}", "causation_id": None,
            "aggregate_type": "invoice", "aggregate_id": f"inv_bench_{i:09d}",
            "aggregate_version": None, "payload": json.dumps({"padding": "x" * 400}),
            "payload_hash": f"{i:064d}", "raw_event_id": None, "status": "accepted",
            "status_changed_at": at} for i, at in zip(ids, occurred, strict=True)]
        delivery_rows = [{
            "event_id": f"evt_bench_{i:09d}", "target": "ledger",
            "delivery_key": f"evt_bench_{i:09d}:ledger",
            "partition_key": f"invoice:inv_bench_{i:09d}",
            "correlation_id": f"corr_bench_{i:09d}", "status": "done", "attempts": 1,
            "next_attempt_at": at, "created_at": at,
            "completed_at": at + timedelta(hours=i % 7), "result": "{}"}
            for i, at in zip(ids, occurred, strict=True)]
        with engine.begin() as conn:
            conn.execute(insert(events), event_rows)
            conn.execute(insert(deliveries), delivery_rows)
    engine.dispose()


def problems(url: str, n: int, now: datetime) -> None:
    """N unresolved exceptions over every class, up to 200 days old, in USD and EUR; and a
    reconciliation run per entity and day of the last year."""
    engine = make_engine(url)
    classes = list(ExceptionClass)
    rows = [{
        "class": classes[i % len(classes)].value, "status": "open",
        "fingerprint": f"bench:{i}", "amount_minor": 1000 + i * 37,
        "currency": "USD" if i % 3 else "EUR", "correlation_id": f"corr_bench_{i:09d}",
        "objects": "[]", "summary": "bench", "opened_at": now - timedelta(hours=i % 4800),
        "updated_at": now} for i in range(n)]
    with engine.begin() as conn:
        if rows:
            conn.execute(insert(exceptions), rows)
        for day in range(365):
            as_of = now.date() - timedelta(days=day + 1)
            for entity, currency in (("le_us", "USD"), ("le_eu", "EUR")):
                record(conn, entity, as_of, Money.from_minor(day * 101, currency), day % 4,
                       [], now)
    engine.dispose()


def browser_times(url: str, token: str, repeat: int) -> tuple[float, float, float]:
    """Median (first render, charts drawn, the page's own GET /v1/overview) in ms."""
    from playwright.sync_api import sync_playwright

    rendered, drawn, fetched = [], [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                             args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_context(viewport={"width": 1280, "height": HEIGHT}).new_page()
        page.goto(url + "/")
        page.wait_for_selector('main[data-rendered="login"]', timeout=RENDER_TIMEOUT_MS)
        page.fill("#login-token", token)
        page.click("#login-form button[type=submit]")
        page.wait_for_selector('main[data-rendered="overview"]', timeout=RENDER_TIMEOUT_MS)
        for _ in range(repeat):
            start = time.perf_counter()
            page.reload()
            page.wait_for_selector('main[data-rendered="overview"]', timeout=60_000)
            rendered.append(time.perf_counter() - start)
            page.wait_for_function(DRAWN, timeout=60_000)
            drawn.append(time.perf_counter() - start)
            fetched.append(page.evaluate(
                "() => performance.getEntriesByType('resource')"
                ".filter(e => e.name.includes('/v1/overview'))"
                ".map(e => e.duration).pop() || 0") / 1000)
        browser.close()
    return (statistics.median(rendered) * 1000, statistics.median(drawn) * 1000,
            statistics.median(fetched) * 1000)


def measure(label: str, workdir: Path, url: str, token: str, repeat: int) -> dict[str, Any]:
    config = load_config(workdir / "finsync.toml")
    finance = build_finance(config)
    services = build_services(config, finance)
    shown = overview(services, None).as_json()
    view_ms = median_ms(lambda: overview(services, None), repeat)
    finance.dispose()
    request = urllib.request.Request(f"{url}/v1/overview", headers=authkit.bearer(token))

    def get() -> None:
        with urllib.request.urlopen(request, timeout=60) as answer:
            assert answer.status == 200
            answer.read()
    http_ms = median_ms(get, repeat)
    render_ms, drawn_ms, fetch_ms = browser_times(url, token, repeat)
    figures = {"store": label, "invoices posted": shown["metrics"]["invoice_posting_success"]
               ["posted"], "unresolved": shown["at_stake"]["count"],
               "view ms": round(view_ms), "HTTP ms": round(http_ms),
               "first render ms": round(render_ms), "of which GET ms": round(fetch_ms),
               "charts drawn ms": round(drawn_ms)}
    print(json.dumps(figures))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=100_000)
    parser.add_argument("--exceptions", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", type=Path, default=None,
                        help="run in this (new) folder and keep it, instead of a temp one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="finsync-overview-") as folder:
        workdir = Path(args.keep or folder)
        workdir.mkdir(parents=True, exist_ok=True)
        run_demo(workdir, keep=True)
        database_url = f"sqlite:///{workdir / 'var' / 'finsync.db'}"
        os.environ["FINSYNC_DATABASE_URL"] = database_url
        engine = make_engine(database_url)
        token = authkit.issue(engine, [FINANCE_READ], principal="bench.reader")
        engine.dispose()
        with served(workdir, database_url) as (url, _process):
            before = measure("demo", workdir, url, token, args.repeat)
            invoices(database_url, args.invoices)
            problems(database_url, args.exceptions, datetime.now(UTC))
            after = measure(f"demo + {args.invoices:,} invoices", workdir, url, token,
                            args.repeat)
    assert after["invoices posted"] == before["invoices posted"] + args.invoices, after
    # The served pipeline's daily reconciliation may open breaks meanwhile: at least.
    assert after["unresolved"] >= before["unresolved"] + args.exceptions, after


if __name__ == "__main__":
    main()
