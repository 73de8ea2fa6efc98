"""Issue 12, findings 7, 8 and 11, and `reconcile`'s exit status: a reconciliation break
stays open until a run finds it agreeing; each document counts once per check; `reconcile`
exits 3 (`unexplained_breaks`) while a break is unexplained; `close` refuses a period the
ERP closed without its revenue; the README's commands, in order, book the revenue."""

from __future__ import annotations

import json
import shlex
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from finsync.bootstrap import Finance, build_billing_service, build_finance
from finsync.cli.main import app
from finsync.config import DEFAULT_CONFIG, load_config, parse_config
from finsync.connectors.ports import BilledInvoice, DeliveryContext, Receivable
from finsync.demo.clock import SimClock
from finsync.domain.catalog import BillingFrequency
from finsync.domain.contract import ContractLine, SubscriptionContract
from finsync.domain.money import Money
from finsync.domain.party import CustomerAccount
from finsync.recon.checks import CHECKS, Snapshot
from finsync.recon.model import Report
from finsync.systems.billing.handler import RegisterCustomer
from finsync.systems.billing.service import BillingService
from finsync.systems.billing.subscription import CreateSubscription
from tests.clikit import add_person, login_as
from tests.ledgerkit import credit_memo, invoice, payment

REPO = Path(__file__).resolve().parents[2]
# Two 60,000.00 contracts over 2026 (the example stream's and the README's con_1): 31 of
# 365 days each, 2 x 5,095.89 = 10,191.78.
JANUARY_REVENUE = "10191.78"
runner = CliRunner()


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


# -- finding 11: one invoice, counted once --------------------------------------------------
def _snapshot(invoices: list[BilledInvoice], receivables: list[Receivable],
              **more: Any) -> Snapshot:
    accounts = {"revenue": "4000", "deferred_revenue": "2400", "contract_asset": "1250",
                "unbilled_receivable": "1260"}
    fields: dict[str, Any] = {
        "invoices": invoices, "credit_memos": [], "payments": [], "refunds": [],
        "contract_values": [], "receivables": receivables, "applications": [],
        "opening": [], "closing": [], "periods": [], "gl": {}, "accounts": accounts,
        "explained": {}, "as_of_closed": True} | more
    return Snapshot("le_us", "USD", date(2026, 1, 31), **fields)


def _one_invoice(**more: Any) -> Report:
    """Billing issued inv_1 for 60,000.00, nothing paid; the ERP holds it at 59,000.00."""
    billed = invoice("inv_1", ["60000.00"], customer="cus_1")
    snap = _snapshot([BilledInvoice(billed, usd("60000.00"))],
                     [Receivable("cus_1", "inv_1", usd("59000.00"), usd("59000.00"))], **more)
    return Report(snap.as_of, tuple(check(snap) for check in CHECKS))


def test_one_invoice_counts_once_in_every_check() -> None:
    """Finding 11: 1,000.00 apart on one invoice is a variance of 1,000.00, not 2,000.00 (nor
    the 120,000 the customer line used to add for a 60,000 invoice missing in the ERP)."""
    report = _one_invoice()
    [ar] = [c for c in report.checks if c.name == "billing_vs_erp_ar"]
    by_ref = {i.ref: i for i in ar.items}
    # invoice line: 59,000.00 - 60,000.00 = -1,000.00, the variance
    assert by_ref["invoice:inv_1"].variance == usd("-1000.00")
    assert by_ref["invoice:inv_1"].cause == "open_amount_differs"
    # customer line, context: both balances shown, its -1,000.00 already counted above
    customer = by_ref["customer:cus_1"]
    assert (customer.expected, customer.actual) == (usd("60000.00"), usd("59000.00"))
    assert customer.counted_elsewhere == usd("-1000.00")
    assert customer.variance.is_zero and not customer.is_break
    assert [i.ref for i in ar.breaks] == ["invoice:inv_1"]
    assert ar.variance == usd("1000.00")
    assert report.total_variance() == {"USD": usd("1000.00")}  # all six checks together
    assert ar.as_dict()["breaks"][0]["variance"] == "-1000.00"


def test_customer_line_counts_what_its_invoices_do_not() -> None:
    """Finding 11: the customer line still catches what no invoice line holds. Billing took
    500.00 unapplied cash from cus_1 that the ERP never booked: balance 59,500.00 in billing
    against 59,000.00 in the ERP, -500.00, of which -1,000.00 is on the invoice line: the
    customer line adds +500.00. Check variance: |-1,000.00| + |+500.00| = 1,500.00."""
    report = _one_invoice(payments=[payment("pay_1", "500.00", {})])
    [ar] = [c for c in report.checks if c.name == "billing_vs_erp_ar"]
    customer = {i.ref: i for i in ar.items}["customer:cus_1"]
    assert customer.variance == usd("500.00")
    assert customer.cause == "customer_balance_differs"
    assert ar.variance == usd("1500.00")
    assert report.total_variance() == {"USD": usd("1500.00")}


# -- finding 7: a break stays open until a run finds it agreeing ----------------------------
@pytest.fixture
def world(tmp_path: Path, db_url: str,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Finance, BillingService]]:
    monkeypatch.setenv("FINSYNC_DATABASE_URL", db_url)
    config = parse_config(tomllib.loads(DEFAULT_CONFIG.read_text()), tmp_path)
    clock = SimClock(datetime(2026, 1, 1, tzinfo=UTC))
    finance = build_finance(config, clock=clock)
    yield finance, build_billing_service(config, finance.hub.engine, clock)
    finance.hub.engine.dispose()


def _subscribe(billing: BillingService, seats: int) -> str:
    billing.execute(RegisterCustomer(CustomerAccount("cus_t", "T", "le_us", "USD", "US")))
    start, end = date(2026, 1, 1), date(2027, 1, 1)
    line = ContractLine("ln_seats", "prod_platform_seat", "price_seat_annual", seats,
                        usd("120.00"), start, end)
    billing.execute(CreateSubscription(SubscriptionContract(
        "con_t", "cus_t", "le_us", "USD", start, end, BillingFrequency.ANNUAL, (line,))))
    return billing.invoices()[0].id


def _breaks(finance: Finance) -> list[dict[str, Any]]:
    return finance.triage.listing(status=None, exception_class="reconciliation_break")


def test_unexplained_break_stays_open_until_a_run_finds_it_agreeing(
        world: tuple[Finance, BillingService]) -> None:
    """Finding 7: a break is never explained by its own reconciliation_break, so three runs
    over the same unexplained break keep one open exception, same id, never resolved in
    between; the run after the fix resolves it."""
    finance, billing = world
    _subscribe(billing, 5)
    finance.hub.run_until_idle()
    erp = finance.ports.ledger()
    erp.post_invoice(invoice("inv_stray", ["250.00"]), DeliveryContext("manual-1", "m", "m"))
    seen: set[int] = set()
    for _ in range(3):
        report = finance.recon.run(date(2026, 1, 31))
        assert [(c.name, i.ref, i.explained_by) for c, i in report.unexplained] == \
            [("billing_vs_erp_ar", "invoice:inv_stray", None)]
        [row] = _breaks(finance)
        assert (row["status"], row["resolved_at"], row["amount_at_stake"]) == \
            ("open", None, "250.00 USD")
        seen.add(row["id"])
    assert len(seen) == 1
    # Someone fixes it in the ERP (the stray invoice is credited); the next run agrees.
    erp.post_credit_memo(credit_memo("cm_stray", "inv_stray", "250.00", on=date(2026, 1, 20)),
                         DeliveryContext("manual-2", "m", "m"))
    assert finance.recon.run(date(2026, 1, 31)).unexplained == ()
    [row] = _breaks(finance)
    assert (row["id"], row["status"], row["resolution_note"]) == \
        (seen.pop(), "resolved", "reconciles on the latest run")


def test_break_explained_by_the_objects_own_exception_opens_no_break(
        world: tuple[Finance, BillingService]) -> None:
    """Finding 7: an explanation names a different exception. January is closed in the ERP
    before the invoice arrives: the invoice's closed_period delivery failure explains its AR
    break, which opens no reconciliation_break, run after run."""
    finance, billing = world
    finance.ports.ledger().close_period("le_us", "2026-01", "controller")
    invoice_id = _subscribe(billing, 5)
    finance.hub.run_until_idle()
    [refused] = finance.triage.listing(exception_class="closed_period")
    for _ in range(2):
        report = finance.recon.run(date(2026, 1, 31))
        [item] = [i for c in report.checks if c.name == "billing_vs_erp_ar" for i in c.breaks]
        assert item.ref == f"invoice:{invoice_id}"
        assert item.explained_by == f"exception {refused['id']} (closed_period)"
        assert not [b for b in _breaks(finance) if item.ref in b["objects"]]


def test_a_look_back_run_resolves_nothing(world: tuple[Finance, BillingService]) -> None:
    """Finding 7: a run as of an earlier day compares other documents; it does not resolve
    a break found as of a later day (the stray invoice is dated 15 January)."""
    finance, billing = world
    _subscribe(billing, 5)
    finance.hub.run_until_idle()
    finance.ports.ledger().post_invoice(invoice("inv_stray", ["250.00"]),
                                        DeliveryContext("manual-1", "m", "m"))
    finance.recon.run(date(2026, 1, 31))
    [before] = _breaks(finance)
    finance.recon.run(date(2026, 1, 10))
    [after] = _breaks(finance)
    assert (after["id"], after["status"]) == (before["id"], "open")


# -- reconcile's exit status, and finding 8 with the README's commands ---------------------
def _readme_commands() -> list[list[str]]:
    """The README's `Using it` commands that build and close January, in its order."""
    text = (REPO / "README.md").read_text()
    block = text.split("## Using it", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    lines = block.replace("\\\n", " ").splitlines()
    wanted = (("init",), ("ingest",), ("run",), ("billing",), ("close",), ("reconcile",),
              ("ledger", "close"), ("ledger", "periods"), ("ledger", "reopen"))
    commands = []
    for line in lines:
        words = shlex.split(line, comments=True)[3:]  # after `python3 dev.py finsync`
        if any(tuple(words[:len(w)]) == w for w in wanted):
            commands.append([str(REPO / w) if (REPO / w).is_file() else w for w in words])
    return commands


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FINSYNC_DATABASE_URL", db_url)
    monkeypatch.delenv("FINSYNC_CONFIG", raising=False)
    return tmp_path


def _cli(args: list[str], code: int = 0) -> Any:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == code, (args, result.output)
    return json.loads(result.stdout)


def _run_all(commands: list[list[str]]) -> None:
    for command in commands:
        _cli(command)


def test_readme_commands_in_order_book_january_revenue(workdir: Path) -> None:
    """Finding 8: following the README books January's revenue at close, and reconciles."""
    commands = _readme_commands()
    assert [c[:2] for c in commands if c[0] in ("close", "ledger")] == \
        [["close", "--entity"], ["ledger", "periods"]]
    _run_all([c for c in commands if c[0] != "reconcile"])
    periods = {p["name"]: p["status"] for p in
               _cli(["ledger", "periods", "--entity", "le_us"])["periods"]}
    assert periods["2026-01"] == "closed"
    report = _cli(["reconcile", "--as-of", "2026-01-31"])
    assert report["unexplained_breaks"] == 0 and "error" not in report
    assert report["total_variance"] == {"USD": "0.00", "EUR": "0.00"}


@contextmanager
def _as_controller(workdir: Path) -> Iterator[None]:
    """A second person, with exceptions:approve, logged in while the block runs."""
    config = workdir / "finsync.toml"
    if '"controller" = "controller"' not in config.read_text():
        add_person(config, "controller", "controller",
                   ["finance:read", "exceptions:approve", "periods:manage"])
    with pytest.MonkeyPatch.context() as patch:
        login_as(patch, "controller")
        yield


def _january_closed_first(workdir: Path) -> None:
    """The README as it was: `ledger close` January before billing's January invoice."""
    commands = [c for c in _readme_commands() if c[0] not in ("close", "reconcile", "ledger")]
    first_run = commands.index(["run"])
    commands.insert(first_run + 1, ["ledger", "close", "--entity", "le_us",
                                    "--period", "2026-01"])
    _run_all(commands)


def test_close_refuses_a_closed_period_whose_revenue_is_not_posted(workdir: Path) -> None:
    """Finding 8: `close` no longer says already_closed (exit 0) over unbooked revenue; it
    refuses with `revenue_not_posted`, names the amount and both ways out. Reopening the
    period (audited) and closing again books it."""
    _january_closed_first(workdir)
    error = _cli(["close", "--entity", "le_us", "--period", "2026-01"], code=1)["error"]
    assert error["code"] == "revenue_not_posted"
    assert f"revenue {JANUARY_REVENUE} USD" in error["message"]
    assert "finsync ledger reopen --entity le_us --period 2026-01" in error["message"]
    assert "--into-open-period" in error["message"]
    # reconcile sees it too: January's revenue is missing from a closed period, unexplained
    report = _cli(["reconcile", "--as-of", "2026-01-31"], code=3)
    assert report["error"]["code"] == "unexplained_breaks"
    revenue = [c for c in report["checks"] if c["name"] == "recognised_vs_gl_revenue"
               and c["legal_entity"] == "le_us"]
    assert revenue[0]["variance"] == JANUARY_REVENUE
    # way out 1: reopen (asked by one principal, approved by another), send the refused
    # invoice again, close
    asked = _cli(["ledger", "reopen", "--entity", "le_us", "--period", "2026-01",
                  "--reason", "January's revenue was never booked"])
    assert asked["status"] == "pending"
    with _as_controller(workdir):
        _cli(["ledger", "reopen-approve", str(asked["id"]), "--note", "agreed"])
    [refused] = _cli(["exceptions", "list", "--class", "closed_period"])["exceptions"]
    _cli(["exceptions", "retry", str(refused["id"]), "--reason", "January is open again"])
    closed = _cli(["close", "--entity", "le_us", "--period", "2026-01"])
    assert (closed["status"], len(closed["journals"])) == ("closed", 1)
    assert _cli(["reconcile", "--as-of", "2026-01-31"])["total_variance"]["USD"] == "0.00"
    again = _cli(["close", "--entity", "le_us", "--period", "2026-01"])
    assert (again["status"], again["journals"]) == ("already_closed", closed["journals"])


def test_close_into_open_period_waits_for_an_approved_reroute(workdir: Path) -> None:
    """Finding 8, the other way out: the journal is sent, refused by the closed period as
    closed_period, and re-routed to February with a second person's approval; `close`
    refuses until then and answers already_closed after."""
    _january_closed_first(workdir)
    sent = _cli(["close", "--entity", "le_us", "--period", "2026-01", "--into-open-period"])
    assert sent["status"] == "awaiting_reroute" and len(sent["journals"]) == 1
    [held] = sent["awaiting_reroute"]
    assert held.endswith("(closed_period)")
    exception_id = held.split()[1]
    error = _cli(["close", "--entity", "le_us", "--period", "2026-01"], code=1)["error"]
    assert error["code"] == "revenue_not_posted" and held in error["message"]
    asked = _cli(["exceptions", "reroute", exception_id, "--reason", "January is closed",
                  ])["outcomes"][0]
    assert asked["status"] == "pending_approval"  # 10,191.78 is above 1,000.00
    with _as_controller(workdir):
        done = _cli(["exceptions", "approve", str(asked["action_id"]), "--note", "agreed",
                     ])["outcomes"][0]
    assert done["status"] == "done" and "2026-02-01" in done["detail"]
    _cli(["run"])
    after = _cli(["close", "--entity", "le_us", "--period", "2026-01"])
    assert (after["status"], after["journals"]) == ("already_closed", sent["journals"])


def test_reconcile_exit_status_follows_unexplained_breaks(workdir: Path) -> None:
    """`reconcile` exits 0 when every break is explained (January is still open), 3 with
    `unexplained_breaks` when one is not, and 0 again once the books agree."""
    _run_all([c for c in _readme_commands() if c[0] in ("init", "billing", "run")])
    explained = _cli(["reconcile", "--as-of", "2026-01-31"])
    breaks = [b for c in explained["checks"] for b in c["breaks"]]
    assert breaks and all(b["explained_by"] == "period_not_closed" for b in breaks)
    assert explained["unexplained_breaks"] == 0
    finance = build_finance(load_config(workdir / "finsync.toml"))
    try:
        finance.ports.ledger().post_invoice(invoice("inv_stray", ["250.00"]),
                                            DeliveryContext("manual-1", "m", "m"))
        report = _cli(["reconcile", "--as-of", "2026-01-31"], code=3)
        assert (report["unexplained_breaks"], report["error"]["code"]) == \
            (1, "unexplained_breaks")
        human = runner.invoke(app, ["reconcile", "--as-of", "2026-01-31"])
        assert human.exit_code == 3
        assert "unexplained_breaks" in human.stderr and "unexplained" in human.stdout
        finance.ports.ledger().post_credit_memo(
            credit_memo("cm_stray", "inv_stray", "250.00", on=date(2026, 1, 20)),
            DeliveryContext("manual-2", "m", "m"))
    finally:
        finance.hub.engine.dispose()
    assert _cli(["reconcile", "--as-of", "2026-01-31"])["unexplained_breaks"] == 0
    assert Decimal(explained["total_variance"]["USD"]) > 0
