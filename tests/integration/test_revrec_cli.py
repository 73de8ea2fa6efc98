"""`finsync revrec run CASE.json` as a deal desk uses it (the app invoked directly), and the
book's reports `finsync revrec waterfall` and `rpo` after the reference workflow."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from finsync.cli.main import app as main_app
from finsync.cli.revrec import app
from finsync.domain.clock import first_of_next_month
from finsync.storage.db import make_engine
from finsync.systems.revrec.schedule import remaining_performance_obligations, waterfall
from finsync.systems.revrec.service import RevenueService
from tests.hubkit import run_settled

runner = CliRunner()
CASES = Path(__file__).resolve().parents[1] / "unit" / "revrec" / "cases"
SLA = CASES / "credit_memo_sla.json"


def _json(args: list[str], code: int = 0) -> Any:
    result = runner.invoke(app, ["run", *args, "--json"])
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


def test_run_reports_allocation_treatment_revenue_and_balances() -> None:
    data = _json([str(SLA)])
    assert data["transaction_price"] == "97608.22"
    allocated = {r["obligation"]: r["allocated"] for r in data["allocation"]}
    assert allocated == {"ln_seats": "60000.00", "ln_seats+v2": "22684.93",
                         "ln_analytics": "14923.29"}
    assert all(r["schedule"].startswith("sch_") for r in data["allocation"])
    (mod,) = data["modifications"]
    assert (mod["treatment"], mod["paragraph"]) == ("separate_contract", "606-10-25-12")
    assert "standalone selling prices" in mod["reason"]
    rows = {r["obligation"]: r for r in data["revenue"]["rows"]}
    assert rows["ln_analytics"]["amounts"]["2026-08"] == "1838.36"
    september = next(b for b in data["balances"] if b["as_of"] == "2026-09-01")
    assert september["deferred_revenue"] == "40109.59"


def test_run_by_quarter_sums_to_the_transaction_price() -> None:
    data = _json([str(SLA), "--period", "quarter"])
    assert [p["period"] for p in data["revenue"]["periods"]] == \
        ["2026-Q1", "2026-Q2", "2026-Q3", "2026-Q4"]
    assert sum(Decimal(r["total"]) for r in data["revenue"]["rows"]) == Decimal("97608.22")
    assert data["balances"][-1]["recognised"] == "97608.22"


def test_run_granularity_option_overrides_the_case() -> None:
    case = CASES / "schedule_month_granularity.json"
    by_day = _json([str(case), "--granularity", "day", "--period", "year"])
    by_month = _json([str(case), "--period", "year"])
    assert by_month["granularity"] == "month"
    assert by_day["revenue"]["rows"][0]["amounts"] != by_month["revenue"]["rows"][0]["amounts"]


def test_run_prints_tables_without_json() -> None:
    result = runner.invoke(app, ["run", str(SLA), "--period", "year"])
    assert result.exit_code == 0, result.output
    for heading in ("allocation", "modifications", "revenue per year", "balances"):
        assert heading in result.output
    assert "606-10-25-12" in result.output


def test_run_bad_case_file_names_the_field(tmp_path: Path) -> None:
    doc = json.loads(SLA.read_text())
    del doc["events"][1]["facts"]["added_goods_distinct"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    data = _json([str(bad)], code=1)
    assert data["error"] == {"code": "case_file_error",
                             "message": "events[1].facts.added_goods_distinct: required"}


def test_run_missing_file_is_a_clean_error(tmp_path: Path) -> None:
    data = _json([str(tmp_path / "nope.json")], code=1)
    assert data["error"]["code"] == "case_file_error"


# -- the book's reports: `finsync revrec waterfall` and `rpo` over the engine's rows ---------

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "reference-workflow.jsonl"


def _cli(args: list[str], code: int = 0) -> Any:
    result = runner.invoke(main_app, [*args, "--json"])
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


@pytest.fixture
def book(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str) -> list[Any]:
    """The reference workflow through the hub; the revenue engine's states, read directly."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FINSYNC_DATABASE_URL", db_url)
    _cli(["init"])
    _cli(["ingest", str(EXAMPLE)])
    run_settled(_cli)
    engine = make_engine(db_url)
    try:
        return RevenueService(engine, lambda _p, _d: None).states("le_us")
    finally:
        engine.dispose()


def test_waterfall_sums_each_month_of_every_contract(book: list[Any]) -> None:
    data = _cli(["revrec", "waterfall", "-e", "le_us", "--from", "2026-01", "--to", "2026-12"])
    assert data["months"][0] == "2026-01" and len(data["months"]) == 12
    for i, month in enumerate(data["months"]):
        start = date(2026, i + 1, 1)
        want = sum((a.amount for state in book
                    for row in waterfall(state, start, first_of_next_month(start)).rows
                    for a in row.amounts), Decimal(0))
        assert Decimal(data["revenue"]["USD"][month]) == want, month


def test_rpo_adds_up_the_contracts_mid_month(book: list[Any]) -> None:
    for day in ("2026-01-01", "2026-05-20", "2026-09-01"):
        (row,) = _cli(["revrec", "rpo", "-e", "le_us", "--as-of", day])["rpo"]
        each = [remaining_performance_obligations(s, date.fromisoformat(day)) for s in book]
        assert Decimal(row["current"]) == sum((r.current.amount for r in each), Decimal(0))
        assert Decimal(row["total"]) == sum((r.total.amount for r in each), Decimal(0))
