"""`finsync billing …` through Typer's runner, on SQLite and PostgreSQL: the reference
amendment round trip, the lifecycle commands, and refused commands that change nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from finsync.cli.billing import app
from tests.clikit import with_auth
from tests.unit.billing.servicekit import snapshot

runner = CliRunner()


@pytest.fixture(autouse=True)
def _authorised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped configuration with a principal for the current login (the database is
    each test's `--database`)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "finsync.toml").write_text(with_auth())


def _call(db_url: str, args: list[str], code: int = 0) -> Any:
    result = runner.invoke(app, [*args, "--database", db_url, "--json"])
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


def _reference(db_url: str) -> None:
    _call(db_url, ["customer", "add", "cus_acme", "--name", "Acme Analytics Inc."])
    _call(db_url, ["subscribe", "con_acme_2026", "--customer", "cus_acme", "--start",
                   "2026-01-01", "--line", "ln_seats=price_seat_annual:500",
                   "--line", "ln_overage=price_usage_overage:0",
                   "--order", "quote_acme_0001", "--usage-frequency", "monthly"])


def test_amend_round_trip_issues_the_reference_invoice(db_url: str) -> None:
    _reference(db_url)
    amended = _call(db_url, ["amend", "con_acme_2026", "--id", "amd_acme_0002", "--on",
                             "2026-05-16", "--add-seats", "ln_seats:300", "--add-product",
                             "ln_analytics=price_analytics_annual", "--reason", "upgrade"])
    assert [e["type"] for e in amended["events"]] == ["contract.amended", "invoice.issued"]
    invoice = amended["events"][1]["document"]
    assert [x["amount"] for x in invoice["lines"]] == ["22684.93", "15123.29"]
    listed = _call(db_url, ["invoices", "--contract", "con_acme_2026"])["invoices"]
    assert [(i["number"], i["total"], i["correlation_id"]) for i in listed] == [
        ("INV-le_us-000001", "60000.00", "quote_acme_0001"),
        ("INV-le_us-000002", "37808.22", "amd_acme_0002")]


def test_lifecycle_commands_pay_credit_refund_usage_and_run(db_url: str) -> None:
    _reference(db_url)
    paid = _call(db_url, ["pay", "INV-le_us-000001", "--id", "pay_1", "--amount", "60000.00",
                          "--on", "2026-01-27"])
    assert [e["type"] for e in paid["events"]] == ["payment.applied"]
    credit = _call(db_url, ["credit", "INV-le_us-000001", "--reason", "sla_credit", "--on",
                            "2026-02-05", "--amount", "200.00"])
    assert credit["events"][0]["document"]["total"] == "200.00"
    refund = _call(db_url, ["refund", "pay_1", "--id", "re_1", "--amount", "200.00", "--on",
                            "2026-02-12"])
    assert refund["events"][0]["type"] == "refund.issued"
    used = _call(db_url, ["usage", "con_acme_2026", "--id", "use_1", "--product",
                          "prod_usage_overage", "--quantity", "1500000", "--on", "2026-02-10"])
    assert used["outbox"] == 1
    ran = _call(db_url, ["run", "--until", "2026-03-01"])
    overage = [e["document"] for e in ran["events"] if e["type"] == "invoice.issued"]
    assert [i["total"] for i in overage] == ["1000.00"]  # 500 000 over x 0.002
    first = _call(db_url, ["invoices"])["invoices"][0]
    assert (first["credited"], first["paid"], first["amount_due"]) == \
        ("200.00", "59800.00", "0.00")


BAD = {
    "negative_seats": (["amend", "con_acme_2026", "--id", "amd_x", "--on", "2026-05-16",
                        "--add-seats", "ln_seats:-5"], "invalid_quantity"),
    "unknown_product": (["amend", "con_acme_2026", "--id", "amd_x", "--on", "2026-05-16",
                         "--add-product", "ln_x=price_nope"], "unknown_price"),
    "before_contract": (["amend", "con_acme_2026", "--id", "amd_x", "--on", "2025-12-01",
                         "--add-seats", "ln_seats:5"], "amendment_date"),
    "currency_mismatch": (["pay", "INV-le_us-000001", "--id", "pay_x", "--amount", "10.00",
                           "--currency", "EUR", "--on", "2026-02-01"], "currency_mismatch"),
    "subscription_currency": (["subscribe", "con_eur", "--customer", "cus_acme", "--start",
                               "2026-01-01", "--currency", "EUR", "--line",
                               "ln=price_seat_annual_eur:5"], "currency_mismatch"),
    "negative_quantity": (["subscribe", "con_neg", "--customer", "cus_acme", "--start",
                           "2026-01-01", "--line", "ln=price_seat_annual:-5"], "domain_error"),
    "bad_date": (["run", "--until", "tomorrow"], "domain_error"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_command_exits_non_zero_and_changes_nothing(db_url: str, engine: Engine,
                                                        case: str) -> None:
    _reference(db_url)
    before = snapshot(engine)
    args, code = BAD[case]
    refused = _call(db_url, args, code=1)
    assert refused["error"]["code"] == code
    assert snapshot(engine) == before


def test_tables_are_printed_without_json(db_url: str) -> None:
    _reference(db_url)
    result = runner.invoke(app, ["invoices", "--database", db_url])
    assert result.exit_code == 0, result.output
    assert "60000.00" in result.stdout
    amended = runner.invoke(app, ["amend", "con_acme_2026", "--id", "amd_1", "--on",
                                  "2026-05-16", "--add-seats", "ln_seats:300",
                                  "--database", db_url])
    assert amended.exit_code == 0, amended.output
    assert "22684.93" in amended.stdout


def test_error_without_json_is_a_message_and_exit_1(db_url: str) -> None:
    result = runner.invoke(app, ["pay", "INV-404", "--id", "p", "--amount", "1.00", "--on",
                                 "2026-01-01", "--database", db_url])
    assert result.exit_code == 1
    assert "unknown_document" in result.output


def test_missing_catalog_file_is_a_clear_error(db_url: str, tmp_path: Any) -> None:
    refused = _call(db_url, ["invoices", "--catalog", str(tmp_path / "none.toml")], code=1)
    assert refused["error"]["code"] == "invalid_catalog"


def test_an_invoice_held_for_an_unknown_place_is_released_once_the_customer_is_fixed(
        db_url: str) -> None:
    # Japan is no jurisdiction of the shipped tax rules: the first invoice is held
    _call(db_url, ["customer", "add", "cus_tokyo", "--name", "Tokyo KK", "--country", "JP"])
    subscribed = _call(db_url, ["subscribe", "con_tokyo", "--customer", "cus_tokyo",
                                "--start", "2026-01-01", "--line", "ln_seats=price_seat_annual:10"])
    assert [e["type"] for e in subscribed["events"]] == ["contract.created", "invoice.held"]
    [held] = _call(db_url, ["held"])["held"]
    assert (held["subtotal"], held["transient"], held["invoice_id"]) == ("1200.00", False,
                                                                          None)
    assert _call(db_url, ["retry-held"])["events"] == []  # same cause: nothing new
    # the customer is in London after all: 10 seats x 120.00 = 1200.00, GB VAT 20 % = 240.00
    _call(db_url, ["customer", "add", "cus_tokyo", "--name", "Tokyo KK", "--country", "GB"])
    released = _call(db_url, ["retry-held", held["id"]])
    assert [e["type"] for e in released["events"]] == ["invoice.released", "invoice.issued"]
    invoice = released["events"][1]["document"]
    assert (invoice["number"], invoice["tax_total"], invoice["total"]) == (
        "INV-le_us-000001", "240.00", "1440.00")
    assert invoice["lines"][0]["taxes"][0]["jurisdiction"] == "GB"
    assert _call(db_url, ["held"])["held"] == []
    assert _call(db_url, ["held", "--released"])["held"][0]["invoice_id"] == invoice["id"]


def test_a_customer_takes_its_state_and_vat_id(db_url: str) -> None:
    # New York taxes SaaS at 4 % (state rate): 10 seats x 120.00 = 1200.00, tax 48.00
    _call(db_url, ["customer", "add", "cus_ny", "--name", "NY Inc.", "--region", "NY",
                   "--tax-id", "US-1"])
    subscribed = _call(db_url, ["subscribe", "con_ny", "--customer", "cus_ny", "--start",
                                "2026-01-01", "--line", "ln_seats=price_seat_annual:10"])
    invoice = subscribed["events"][1]["document"]
    assert (invoice["tax_total"], invoice["lines"][0]["taxes"][0]["jurisdiction"]) == (
        "48.00", "US-NY")
