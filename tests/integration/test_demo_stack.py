"""`finsync demo --stack stripe-tryton` on real processes: localstripe as Stripe, trytond on
PostgreSQL as the ERP (a clone of the session's bootstrapped books), a new PostgreSQL
database as the hub's store. The year runs the reference steps localstripe can do, says
which it skipped and why, closes twelve months in Tryton and reconciles to zero against
Stripe's books (the connector's mirror, kept by the poller)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from finsync.cli.demo import show_stack
from finsync.cli.main import app
from finsync.demo.stack_config import StackSettings
from tests.external import stack
from tests.external.tryton import TrytonSite
from tests.external.tryton_fixtures import COMPANY
from tests.stripekit import Localstripe

LOCALSTRIPE_LACKS = {"Prices API", "credit notes", "meters", "test clocks"}
# the embedded demo's report (tests/integration/test_demo.py), every section of it
EMBEDDED = {"invoices", "journal_entries", "revenue_recognized", "reconciliation", "exceptions",
            "duplicates_ignored", "parked_out_of_order", "correlation_chains_complete",
            "amendment_correlation_id", "amendment_timeline", "amendment_status", "closes",
            "triage_actions", "faults", "books_unchanged_by_replay", "replay",
            "trial_balance", "status", "audit", "workdir", "workdir_kept"}


@pytest.fixture(scope="module")
def settings(tryton: TrytonSite, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[StackSettings]:
    books = tryton.clone()
    try:
        with stack.stack(tmp_path_factory.mktemp("stack"),
                         (tryton.server.url, books)) as running:
            yield dataclasses.replace(running, tryton_company=COMPANY)
    finally:
        tryton.discard(books)


def command(settings: StackSettings, *more: str) -> list[str]:
    return ["demo", "--stack", "stripe-tryton", "--stripe-url", settings.stripe_url,
            "--stripe-key-env", settings.stripe_key_env, "--tryton-url", settings.tryton_url,
            "--tryton-database", settings.tryton_database, "--tryton-password-env",
            settings.tryton_password_env, "--tryton-company", settings.tryton_company,
            "--database-url", settings.database_url, *more]


@pytest.fixture(scope="module")
def report(settings: StackSettings) -> dict[str, Any]:
    """The packaged command's year, as `--json` prints it (exit 0: it reconciled)."""
    result = CliRunner().invoke(app, command(settings, "--json"))
    assert result.exit_code == 0, result.output[-4000:]
    printed: dict[str, Any] = json.loads(result.stdout)
    return printed


def test_the_year_on_the_stack_reconciles_to_zero(report: dict[str, Any]) -> None:
    assert report["ok"], json.dumps(report, indent=1, default=str)[:4000]
    recon = report["reconciliation"]
    assert recon["total_variance"] == {"USD": "0.00"}
    items = {c["name"]: c["items"] for c in recon["checks"]}
    # the invoice and its customer; the subscription; its payment; the months of as_of's
    # year closed; the roll-forward's three lines
    assert items["billing_vs_erp_ar"] >= 1 and items["contract_value_vs_transaction_price"] == 1
    assert items["payments_vs_ar_applications"] == 1
    assert items["recognised_vs_gl_revenue"] == date.fromisoformat(recon["as_of"]).month
    assert report["exceptions"]["open"] == 0 and report["books_unchanged_by_replay"]
    assert [c["status"] for c in report["closes"]] == ["closed"] * 12
    assert report["correlation_chains_complete"] and report["audit"]["ok"]
    assert set(report) >= EMBEDDED and report["problems"] == []


def test_what_localstripe_cannot_do_is_skipped_and_says_why(report: dict[str, Any]) -> None:
    assert set(report["stack"]["stripe_lacks"]) == LOCALSTRIPE_LACKS
    status = {s["key"]: s for s in report["steps"]}
    assert status["subscribe"]["status"] == "ran"
    skipped = {key: s["detail"] for key, s in status.items() if s["status"] == "skipped"}
    assert set(skipped) == {"subscribe_usage", "upgrade", "sla_credit", "refund",
                            *(f"usage_{m:02d}" for m in range(12))}
    assert skipped["upgrade"] == "this Stripe has no Prices API, test clocks"
    assert skipped["sla_credit"] == "this Stripe has no credit notes, test clocks"
    assert skipped["usage_00"] == "this Stripe has no Prices API, meters, test clocks"
    assert not any(s["status"] == "failed" for s in report["steps"])
    assert report["usage"]["taken"] is False


def test_stripes_invoice_is_in_tryton_and_recognised_day_by_day(
        report: dict[str, Any], settings: StackSettings) -> None:
    [invoice] = report["invoices"]
    assert (invoice["total"], invoice["paid"], invoice["due"]) == ("60000.00", "60000.00",
                                                                   "0.00")
    # 500 seats x 120.00 = 60,000.00 over Stripe's period [start, end) (localstripe's year
    # is 365 days, even across a 29 February), ratably by day: through as_of, 60,000.00 x
    # days elapsed / days in the term (cumulative rounding)
    [sub] = Localstripe(settings.stripe_url).call("GET", "/v1/subscriptions")["data"]
    start, end = (datetime.fromtimestamp(sub[k], UTC).date()
                  for k in ("current_period_start", "current_period_end"))
    assert start.isoformat() == report["steps"][0]["on"]
    as_of = date.fromisoformat(report["reconciliation"]["as_of"])
    term = (end - start).days
    elapsed = (as_of - start).days + 1
    recognised = (Decimal(60000) * elapsed / term).quantize(Decimal("0.01"), ROUND_HALF_UP)
    balances = report["trial_balance"]["le_us"]
    assert Decimal(balances["1.1.1"]) == Decimal("60000.00")  # cash; the receivable settled
    assert -Decimal(balances["4.2.2"]) == recognised  # revenue over time
    assert -Decimal(balances["2.2.2"]) == Decimal("60000.00") - recognised  # deferred
    months = report["revenue_recognized"]
    assert len(months) == 12 and sum(Decimal(v) for v in months.values()) == recognised


def test_the_report_prints_what_ran_and_what_was_skipped(
        report: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    show_stack(report, as_json=False)
    printed = capsys.readouterr().out
    assert "SKIPPED" in printed and "this Stripe has no credit notes" in printed
    assert "reconciled to zero" in printed


def test_a_second_year_in_the_same_hub_database_is_refused(settings: StackSettings,
                                                            tmp_path: Path) -> None:
    """The demo is a company's first year: a database holding events is refused before
    anything is made at Stripe."""
    before = stack_customers(settings)
    result = CliRunner().invoke(app, command(settings, "--directory", str(tmp_path), "--json"))
    assert result.exit_code == 1
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "stack_demo" and "empty database" in error["message"]
    assert stack_customers(settings) == before


def stack_customers(settings: StackSettings) -> int:
    return len(Localstripe(settings.stripe_url).call("GET", "/v1/customers")["data"])
