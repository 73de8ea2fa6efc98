"""`finsync ledger …` as finance uses it, after the example stream went through the hub;
the beancount export is checked by the real `bean-check` program."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from finsync.auth.principal import normalise
from finsync.cli.common import os_login
from finsync.cli.main import app
from tests.clikit import add_person, login_as
from tests.hubkit import run_settled

runner = CliRunner()
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "reference-workflow.jsonl"


def _json(args: list[str], code: int = 0) -> Any:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


@pytest.fixture
def books(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FINSYNC_DATABASE_URL", db_url)
    _json(["init"])
    _json(["ingest", str(EXAMPLE)])
    # 6 to the ledger; 2 contracts, 2 invoices and 1 credit memo to revrec; the 2 invoices
    # and the memo committed to the tax engine
    assert run_settled(_json)["status"]["deliveries"] == {"done": 15}  # the party included
    return tmp_path


def test_trial_balance_sums_to_zero_and_shows_the_cash(books: Path) -> None:
    tb = _json(["ledger", "trial-balance", "--entity", "le_us", "--as-of", "2026-12-31"])
    accounts = {a["account"]: a["balance"] for a in tb["le_us"]["accounts"]}
    assert tb["le_us"]["total"] == "0.00"
    assert accounts["1000"] == "97608.22"


def test_aging_shows_the_open_upgrade_invoice_and_subledgers_agree(books: Path) -> None:
    aging = _json(["ledger", "aging", "--as-of", "2026-05-20", "-e", "le_us"])["le_us"]
    assert [(c["customer"], c["total"]) for c in aging["customers"]] == \
        [("cus_acme", "37808.22")]
    assert {v["difference"] for v in aging["subledgers"].values()} == {"0.00"}


def test_gl_runs_a_balance_per_line(books: Path) -> None:
    lines = _json(["ledger", "gl", "--account", "1200", "-e", "le_us"])["entities"]["le_us"]
    assert [line["balance"] for line in lines] == ["60000.00", "0.00", "37808.22", "0.00"]


def test_close_then_reopen_is_audited_and_needs_a_reason(
        books: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    closed = _json(["ledger", "close", "-e", "le_us", "-p", "2026-01"])
    assert (closed["status"], closed["by"]) == ("closed", normalise(os_login()))
    periods = _json(["ledger", "periods", "-e", "le_us"])["periods"]
    assert periods[0] | {"start": None, "end": None} == {
        "legal_entity": "le_us", "name": "2026-01", "start": None, "end": None,
        "status": "closed"}
    result = runner.invoke(app, ["ledger", "reopen", "-e", "le_us", "-p", "2026-01"])
    assert result.exit_code == 2 and "--reason" in result.output
    asked = _json(["ledger", "reopen", "-e", "le_us", "-p", "2026-01",
                   "--reason", "late invoice"])
    assert asked["status"] == "pending"  # a second principal opens it
    add_person(books / "finsync.toml", "controller", "controller",
               ["finance:read", "periods:manage", "exceptions:approve"])
    login_as(monkeypatch, "controller")
    assert _json(["ledger", "reopen-approve", str(asked["id"]), "--note", "ok"]
                 )["status"] == "approved"
    assert _json(["ledger", "periods", "-e", "le_us"])["periods"][0]["status"] == "open"


def test_unknown_entity_is_a_clear_error(books: Path) -> None:
    error = _json(["ledger", "trial-balance", "--entity", "le_mars"], code=1)["error"]
    assert error["code"] == "config_error" and "le_mars" in error["message"]


def test_export_passes_bean_check(books: Path) -> None:
    out = books / "books.beancount"
    assert _json(["ledger", "export", str(out)])["entries"] == 6
    bean_check = shutil.which("bean-check", path=str(Path(sys.executable).parent))
    assert bean_check is not None, "beancount is a test dependency"
    checked = subprocess.run([bean_check, str(out)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
