"""The console in a real browser: the demo's year served by `finsync serve`'s app in a
process of its own, logged in to by role, in Debian's chromium driven by Playwright.

- `site` (session): the demo run once into a folder (its `finsync.toml` beside its database),
  served on a free port with the pipeline running, and an API token per role in `ROLES`.
- `browser` (session): headless chromium (`/usr/bin/chromium`). Without it the browser tests
  skip, saying so, unless FINSYNC_REQUIRE_SERVICES=1 makes that a failure (CI installs it).
- `logged_in(browser, site, role)`: a page of a new browser context, logged in as `role`
  through the log-in form (a real session cookie), showing the overview.
- `open_page(page, "exceptions/12")`: navigate the console and wait until the page has
  rendered (`main[data-rendered]`).
- `shot(page, name)`: full-page screenshots at 1280 and 390 px wide, into
  FINSYNC_SCREENSHOT_DIR (`docs/console/` to refresh the documentation's) or a temporary folder.
- `cli_json(site, role, args)`: a finsync command on the same configuration, acting as the
  role's token, its JSON answer: what the browser shows is compared with it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import finsync
from finsync.bootstrap import build_billing_service, build_finance
from finsync.config import load_config
from finsync.demo.run import CONSOLE_ROLES, run_demo
from finsync.storage.raw_log import RawIn

CHROMIUM = Path("/usr/bin/chromium")
# The finsync these tests import, first on the children's path: a `finsync serve` or CLI
# child started in another folder runs the same code (a worktree's, not an installed one's).
SOURCE_ROOT = Path(finsync.__file__).resolve().parents[1]
REQUIRE_SERVICES = os.environ.get("FINSYNC_REQUIRE_SERVICES") == "1"
# Each person of the issue, with the scopes that person's token holds (a kept demo's).
ROLES = CONSOLE_ROLES
WIDTHS = (1280, 390)
HEIGHT = 900
START_TIMEOUT_S = 30.0
RENDER_TIMEOUT_MS = 15_000
# A background job the console started (a bulk replay runs the pipeline; a reconciliation
# run reads every book) is work, not a render: waited for as long as a loaded machine
# needs. How long it takes is a benchmark's business, not a test's.
JOB_TIMEOUT_MS = 120_000
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"]


@dataclass(frozen=True)
class Site:
    url: str
    workdir: Path
    config: Path
    database_url: str
    tokens: dict[str, str]
    process: subprocess.Popen[bytes]


def _child_environment() -> dict[str, str]:
    paths = [str(SOURCE_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"finsync serve ended: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"finsync serve did not become healthy: {log.read_text()[-2000:]}")


@contextmanager
def served(workdir: Path, database_url: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`finsync serve`'s app (the same factory, uvicorn) on the folder's configuration,
    stopped on the way out."""
    port = _free_port()
    log = workdir / "serve.log"
    env = {**_child_environment(), "FINSYNC_CONFIG": str(workdir / "finsync.toml"),
           "FINSYNC_WORKER_INTERVAL_S": "0.2", "FINSYNC_DATABASE_URL": database_url,
           # The demo's year is fixed; a daily run as of the machine's yesterday would make
           # what the pages show depend on the day the tests run.
           "FINSYNC_DAILY": "off"}
    with log.open("wb") as output:  # the child has its own copy of the descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory",
             "finsync.api.main:app_from_environment", "--host", "127.0.0.1", "--port",
             str(port), "--log-level", "warning"],
            cwd=workdir, env=env, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, log)
    except RuntimeError:
        process.kill()
        raise
    try:
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def _payment(invoice: Any, payment_id: str, amount: str, source_event_id: str) -> bytes:
    """A payment of `amount` on `invoice`, received on 2026-11-30 (a period the demo
    closed), as billing would send it."""
    event = {"type": "payment.applied", "schema_version": 1, "source": "billing",
             "source_event_id": source_event_id, "occurred_at": "2026-11-30T16:00:00+00:00",
             "correlation_id": invoice.correlation_id, "causation_id": None,
             "business_key": None,
             "aggregate": {"type": "payment", "id": payment_id, "version": None},
             "payload": {"payment": {
                 "id": payment_id, "customer_id": invoice.customer_id, "legal_entity": "le_us",
                 "currency": invoice.total.currency, "amount": amount,
                 "received_on": "2026-11-30",
                 "applications": [{"invoice_id": invoice.id, "amount": amount}]}}}
    return json.dumps(event).encode()


def _held_for_tax(invoice: Any) -> bytes:
    """A draft of 2,400.00 held on 2026-12-01 because the tax engine did not answer, as
    billing would send it (`invoice.held`, transient: a `retrying` tax_failure)."""
    held = {"id": "hold_demo_1", "version": 1, "customer_id": invoice.customer_id,
            "contract_id": invoice.contract_id, "legal_entity": "le_us",
            "currency": invoice.total.currency, "issue_date": "2026-12-01",
            "subtotal": "2400.00", "code": "tax_unavailable",
            "reason": "the tax engine did not answer within 5 s", "transient": True,
            "invoice_id": None}
    event = {"type": "invoice.held", "schema_version": 1, "source": "billing",
             "source_event_id": "hold_demo_1-v1", "occurred_at": "2026-12-01T06:00:00+00:00",
             "correlation_id": invoice.correlation_id, "causation_id": None,
             "business_key": None,
             "aggregate": {"type": "held_invoice", "id": "hold_demo_1", "version": 1},
             "payload": {"held_invoice": held}}
    return json.dumps(event).encode()


def seed_open_exceptions(config: Path) -> None:
    """What a queue holds on an ordinary morning, on top of the demo's year (whose queue it
    leaves empty): a webhook body that is not JSON (`mapping_error`), a late payment into a
    closed period (`closed_period`, money at stake), the same bank event sent again with
    another amount (`duplicate_event`) and an invoice held for tax (`tax_failure`)."""
    loaded = load_config(config)
    finance = build_finance(loaded)
    try:
        invoice = build_billing_service(loaded, finance.hub.engine).invoices()[0]
        finance.hub.intake.store([
            RawIn("canonical", b"<html>502 Bad Gateway</html>", {}),
            RawIn("canonical", _payment(invoice, "pay_late_1130", "1250.00", "bank-1130"), {}),
            RawIn("canonical", _payment(invoice, "pay_bank_1201", "800.00", "bank-1201"), {}),
            RawIn("canonical", _payment(invoice, "pay_bank_1201", "880.00", "bank-1201"), {}),
            RawIn("canonical", _held_for_tax(invoice), {})])
        finance.hub.run_until_idle()
    finally:
        finance.dispose()


# Package scope: Playwright's sync API keeps an event loop running in this thread while it
# is open, which `asyncio.run` in the tests after the browser tests cannot share.
@pytest.fixture(scope="package")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    workdir = tmp_path_factory.mktemp("console-demo")
    report = run_demo(workdir, keep=True)
    database_url = f"sqlite:///{workdir / 'var' / 'finsync.db'}"
    lines = Path(report["console_tokens"]).read_text().splitlines()
    tokens = dict(line.split("\t") for line in lines)
    seed_open_exceptions(workdir / "finsync.toml")
    with served(workdir, database_url) as (url, process):
        yield Site(url, workdir, workdir / "finsync.toml", database_url, tokens, process)


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is not installed (apt-get install chromium)"
        if REQUIRE_SERVICES:
            pytest.fail(f"{message}; FINSYNC_REQUIRE_SERVICES=1 makes this a failure")
        pytest.skip(f"{message}: the browser tests need it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                              args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def open_page(page: Any, path: str) -> None:
    """Navigate the console to `#/path` and wait until that page has rendered."""
    name = path.split("?")[0].split("/")[0] or "overview"
    page.evaluate("path => { location.hash = '#/' + path; }", path)
    page.wait_for_selector(f'main[data-rendered="{name}"]', timeout=RENDER_TIMEOUT_MS)


def logged_in(browser: Any, site: Site, role: str, width: int = WIDTHS[0]) -> Any:
    """A new page logged in as `role` through the log-in form."""
    context = browser.new_context(viewport={"width": width, "height": HEIGHT})
    page = context.new_page()
    page.goto(site.url + "/")
    page.wait_for_selector('main[data-rendered="login"]', timeout=RENDER_TIMEOUT_MS)
    page.fill("#login-token", site.tokens[role])
    page.click("#login-form button[type=submit]")
    page.wait_for_selector('main[data-rendered="overview"]', timeout=RENDER_TIMEOUT_MS)
    return page


def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("FINSYNC_SCREENSHOT_DIR")
    folder = Path(configured) if configured else tmp_path_factory.getbasetemp() / "screens"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="package")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return screenshot_dir(tmp_path_factory)


def shot(page: Any, folder: Path, name: str) -> list[Path]:
    """Full-page screenshots of what `page` shows at each width of `WIDTHS`; charts are
    waited for, so they are in the picture."""
    taken = []
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": HEIGHT})
        page.wait_for_function("() => [...document.querySelectorAll('.chart')]"
                               ".every(c => c.dataset.drawn === 'true')",
                               timeout=RENDER_TIMEOUT_MS)
        page.wait_for_timeout(150)  # plotly's responsive relayout after the resize
        path = folder / f"{name}-{width}.png"
        page.screenshot(path=str(path), full_page=True)
        taken.append(path)
    page.set_viewport_size({"width": WIDTHS[0], "height": HEIGHT})
    return taken


def cli_json(site: Site, role: str, args: Sequence[str], code: int = 0) -> Any:
    """`finsync ARGS --json` on the site's configuration, acting as `role`'s token."""
    env = {**_child_environment(), "FINSYNC_TOKEN": site.tokens[role],
           "FINSYNC_DATABASE_URL": site.database_url}
    done = subprocess.run([sys.executable, "-m", "finsync", *args, "--json", "--config",
                           str(site.config)],
                          cwd=site.workdir, env=env, capture_output=True, timeout=120)
    assert done.returncode == code, done.stderr.decode()[-2000:] + done.stdout.decode()[-2000:]
    return json.loads(done.stdout)
