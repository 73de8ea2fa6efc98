"""End to end, on SQLite and PostgreSQL: the hub with embedded billing, ledger and revenue
engine, and the tax engine in a process of its own (`finsync tax serve`, reached over
HTTP). The engine is stopped: the billing clock's invoice is held, a `retrying`
tax_failure puts its subtotal at stake and nothing of it is posted. The engine is started
again and finance retries: the invoice is issued, posted once, committed to the tax engine,
the exception resolved, and the books reconcile.

Hand-worked: 10 seats at 120.00 a seat-year, billed quarterly: 10 x 120.00 x 3/12 = 300.00
a quarter; New York taxes SaaS at 4 % (default_tax.toml, state rate): 12.00, total 312.00.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

import finsync
from finsync.bootstrap import Finance, build_billing_service, build_finance
from finsync.config import DEFAULT_CONFIG, parse_config
from finsync.demo.clock import SimClock
from finsync.domain.catalog import BillingFrequency
from finsync.domain.contract import ContractLine, SubscriptionContract
from finsync.domain.money import Money
from finsync.domain.party import CustomerAccount
from finsync.hub.replay import ReplayFilter
from finsync.systems.billing.handler import RegisterCustomer, RunClock
from finsync.systems.billing.service import BillingService
from finsync.systems.billing.subscription import CreateSubscription
from tests.clikit import with_auth
from tests.people import ALICE

TOKEN = "tax-engine-test-token"
SOURCE_ROOT = Path(finsync.__file__).resolve().parents[1]
START_S = 60.0


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class TaxEngineProcess:
    """`finsync tax serve` on its own configuration and database, on a fixed port: stopped
    and started again to play an outage."""

    def __init__(self, folder: Path, database_url: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.config = folder / "finsync.toml"
        self.config.write_text(with_auth())
        self.database_url, self.port = database_url, _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / "tax-serve.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        paths = [str(SOURCE_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(":"))]
        env = {**os.environ, "PYTHONPATH": ":".join(paths), "FINSYNC_TAX_TOKEN": TOKEN,
               "FINSYNC_DATABASE_URL": self.database_url}
        with self.log.open("ab") as output:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "finsync", "tax", "serve", "--port", str(self.port),
                 "--config", str(self.config)],
                env=env, stdout=output, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"finsync tax serve ended: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"finsync tax serve did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(5)
        self._process = None


@pytest.fixture
def tax_engine(tmp_path: Path, db_url: str) -> Iterator[TaxEngineProcess]:
    # On SQLite the engine has a database file of its own; on PostgreSQL its own tables in
    # the test database (the hub's configuration reaches it only over HTTP).
    own = f"sqlite:///{tmp_path / 'tax' / 'tax.db'}" if db_url.startswith("sqlite") else db_url
    engine = TaxEngineProcess(tmp_path / "tax", own)
    engine.start()
    yield engine
    engine.stop()


@pytest.fixture
def world(tmp_path: Path, db_url: str, tax_engine: TaxEngineProcess,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Finance, BillingService, SimClock]]:
    monkeypatch.setenv("FINSYNC_DATABASE_URL", db_url)
    monkeypatch.setenv("FINSYNC_TAX_TOKEN", TOKEN)
    text = DEFAULT_CONFIG.read_text()
    embedded = '[systems.tax]\nrole = "tax"\nconnector = "embedded"\n'
    assert embedded in text
    text = text.replace(embedded, f'[systems.tax]\nrole = "tax"\nconnector = "http"\n'
                                  f'url = "{tax_engine.url}"\ntimeout_s = 5\n')
    config = parse_config(tomllib.loads(text), tmp_path)
    clock = SimClock(datetime(2026, 1, 1, 9, tzinfo=UTC))
    finance = build_finance(config, clock=clock)
    yield finance, build_billing_service(config, finance.hub.engine, clock), clock
    finance.dispose()


def _subscribe(billing: BillingService) -> None:
    billing.execute(RegisterCustomer(CustomerAccount(
        "cus_ny", "Empire Analytics", "le_us", "USD", "US", billing_region="NY")))
    start, end = date(2026, 1, 1), date(2027, 1, 1)
    line = ContractLine("ln_seats", "prod_platform_seat", "price_seat_annual", 10,
                        Money.of("120.00", "USD"), start, end)
    billing.execute(CreateSubscription(SubscriptionContract(
        "con_ny", "cus_ny", "le_us", "USD", start, end, BillingFrequency.QUARTERLY, (line,))))


def _ledger_invoices(finance: Finance) -> list[str]:
    """The external ids of every delivery done to the ledger (one per invoice here)."""
    return [d.external_id for d in finance.hub.delivered(["ledger"])]


def test_an_invoice_held_while_the_tax_engine_is_down_is_issued_once_it_is_back(
        world: tuple[Finance, BillingService, SimClock],
        tax_engine: TaxEngineProcess) -> None:
    finance, billing, clock = world
    _subscribe(billing)
    finance.hub.run_until_idle()
    [q1] = billing.invoices()
    assert (q1.subtotal, q1.tax_total, q1.total) == (
        Money.of("300.00", "USD"), Money.of("12.00", "USD"), Money.of("312.00", "USD"))
    assert len(_ledger_invoices(finance)) == 1

    tax_engine.stop()
    clock.to(date(2026, 4, 1))
    billing.execute(RunClock(date(2026, 4, 1)))  # Q2 is due: its tax cannot be asked
    finance.hub.run_until_idle()
    assert [i.id for i in billing.invoices()] == [q1.id]  # nothing issued, nothing numbered
    [row] = finance.triage.listing(status="retrying", exception_class="tax_failure")
    assert row["amount_at_stake"] == "300.00 USD"  # the subtotal: no tax could be computed
    assert "customer:cus_ny" in row["objects"] and "contract:con_ny" in row["objects"]
    assert row["correlation_id"] is not None
    held = finance.hub.status()["held_for_tax"]
    assert held["count"] == 1 and held["at_stake"] == {"USD": "300.00"}
    assert len(_ledger_invoices(finance)) == 1  # nothing of Q2 is posted
    names = [m["name"] for m in finance.hub.timeline(row["correlation_id"])]
    assert "invoice_held" in names

    tax_engine.start()
    outcome = finance.triage.retry(int(row["id"]), ALICE, "the tax engine is back")
    assert "issued it as invoice" in outcome.detail
    finance.hub.run_until_idle()
    q2 = [i for i in billing.invoices() if i.id != q1.id]
    assert [(i.subtotal, i.tax_total, i.issue_date) for i in q2] == [
        (Money.of("300.00", "USD"), Money.of("12.00", "USD"), date(2026, 4, 1))]
    assert finance.triage.show(int(row["id"]))["status"] == "resolved"
    assert finance.hub.status()["held_for_tax"]["count"] == 0
    assert finance.hub.status()["unresolved_exceptions"]["count"] == 0
    posted = _ledger_invoices(finance)
    assert len(posted) == 2
    names = [m["name"] for m in finance.hub.timeline(row["correlation_id"])]
    assert names.count("tax_committed") == 2 and "exception_resolved" in names

    # Replayed from the log, everything stays as it is: posted once, committed once.
    finance.hub.replay(ReplayFilter(everything=True))
    finance.hub.run_until_idle()
    assert _ledger_invoices(finance) == posted
    clock.to(date(2026, 5, 1))
    for month in ("2026-01", "2026-02", "2026-03", "2026-04"):  # revenue journals posted
        finance.close.close("le_us", month, "controller")
    finance.hub.run_until_idle()
    report = finance.recon.run(date(2026, 4, 30))
    breaks = [(c.name, c.legal_entity, [i.as_dict() for i in c.breaks])
              for c in report.checks if c.breaks]
    assert breaks == []
    assert all(v.is_zero for v in report.total_variance().values())
