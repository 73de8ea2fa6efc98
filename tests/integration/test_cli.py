"""The CLI as a person uses it: init, ingest, run, status, replay, exceptions; --json gives
one JSON object; bad input gives a clear message and a non-zero exit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from finsync.cli.main import app
from tests.builders import lifecycle_stream
from tests.hubkit import run_settled

DONE = 24
HEAD = "0003"  # the newest migration of the hub's schema

runner = CliRunner()


def _json(args: list[str], code: int = 0) -> Any:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FINSYNC_DATABASE_URL", db_url)
    assert _json(["init"])["revision"] == HEAD
    with (tmp_path / "finsync.toml").open("a") as config:  # the test stream's product
        config.write('\n[[revenue.ssp]]\nproduct_id = "prod_seat"\namount = "120.00"\n'
                     'currency = "USD"\neffective_from = 2025-01-01\n')
    return tmp_path


def test_ingest_run_status_replay_round_trip(workdir: Path) -> None:
    stream = workdir / "stream.jsonl"
    stream.write_bytes(b"\n".join(lifecycle_stream(customers=2).lines()) + b"\n{oops\n")
    assert _json(["ingest", str(stream)])["stored"] == 19
    run = run_settled(_json)
    assert run["status"]["raw_events"] == {"mapped": 18, "rejected": 1}
    # 12 to the ledger; 6 contracts and 6 invoices to revrec
    assert run["status"]["deliveries"] == {"done": DONE}
    assert run["status"]["exceptions"] == {"open": {"mapping_error": 1}}
    assert _json(["ingest", str(stream)])["stored"] == 19
    assert _json(["run"])["status"]["duplicates_ignored"] == 18
    replay = _json(["replay", "--all"])
    assert replay["replay"]["requeued"] == DONE
    assert run_settled(_json)["status"]["deliveries"] == {"done": DONE}
    listed = _json(["exceptions", "list"])
    assert [e["class"] for e in listed["exceptions"]] == ["mapping_error"] * 2  # one per payload
    timeline = _json(["timeline", "con_0-v2"])
    assert {m["name"] for m in timeline["milestones"]} >= \
        {"contract_accepted", "invoice_posted", "payment_applied", "revenue_schedule_created",
         "invoice_linked_to_revenue"}


def test_db_upgrade_is_idempotent(workdir: Path) -> None:
    assert _json(["db", "upgrade"]) | {"database": None} == \
        {"database": None, "from": HEAD, "to": HEAD}


def test_unknown_source_is_refused_with_exit_code(workdir: Path) -> None:
    (workdir / "x.jsonl").write_text("{}\n")
    error = _json(["ingest", "x.jsonl", "--source", "salesforce"], code=1)["error"]
    assert error["code"] == "unknown_source"


def test_missing_file_is_refused(workdir: Path) -> None:
    assert _json(["ingest", "nope.jsonl"], code=1)["error"]["code"] == "file_not_found"


def test_replay_without_selection_is_refused(workdir: Path) -> None:
    assert _json(["replay"], code=2)["error"]["code"] == "empty_selection"


def test_broken_config_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "finsync.toml").write_text("[ownership]\ncustomer = 'billing'\n")
    error = _json(["status"], code=1)["error"]
    assert error["code"] == "config_error" and "must name an owner" in error["message"]
