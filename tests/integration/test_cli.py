"""The CLI as a person uses it: init, ingest, run, status, replay, exceptions; --json gives
one JSON object; bad input gives a clear message and a non-zero exit."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from finsync.cli.main import app
from tests.builders import lifecycle_stream
from tests.clikit import cli_json as _json
from tests.clikit import runner
from tests.hubkit import run_settled

DONE = 30  # 12 to the ledger, 12 to revrec, the 6 invoices committed to the tax engine
HEAD = "0015"  # the newest migration of the hub's schema


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
    # 12 to the ledger; 6 contracts and 6 invoices to revrec; 6 invoices to the tax engine
    assert run["status"]["deliveries"] == {"done": DONE}
    assert run["status"]["exceptions"] == {"open": {"mapping_error": 1}}
    assert _json(["ingest", str(stream)])["stored"] == 19
    assert _json(["run"])["status"]["duplicates_ignored"] == 18
    replay = _json(["replay", "--all", "--reason", "re-drive after the fix"])
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


# Finding 9 of the hardening issue: status hid money at risk. The reference stream's upgrade
# invoice reaches the revenue engine before it knows the new obligation (37,808.22 USD,
# missing_revrec_reference), and the SLA credit memo comes before its invoice (200.00 USD,
# sequencing_error); both are `retrying`: 37,808.22 + 200.00 = 38,008.22 USD at stake.
REFERENCE = Path(__file__).resolve().parents[2] / "examples" / "reference-workflow.jsonl"
RETRYING = {"missing_revrec_reference": {"count": 1, "at_stake": {"USD": "37808.22"}},
            "sequencing_error": {"count": 1, "at_stake": {"USD": "200.00"}}}


def _retries_after(workdir: Path, base_s: str, cap_s: str) -> None:
    config = workdir / "finsync.toml"
    text = config.read_text()
    text = text.replace("backoff_base_s = 0.5", f"backoff_base_s = {base_s}")
    config.write_text(text.replace("backoff_cap_s = 300", f"backoff_cap_s = {cap_s}"))


def test_status_shows_retrying_exceptions_with_money_at_stake(workdir: Path) -> None:
    """Finding 9: after the example stream and `run`, `status` said "open exceptions: none
    0" and `exceptions list` was empty, while `retrying` exceptions held 38,008.22 USD."""
    _retries_after(workdir, "86400", "86400")  # no retry falls due during the test
    assert _json(["ingest", str(REFERENCE)])["stored"] == 9
    unresolved = _json(["run", "--no-wait"])["status"]["unresolved_exceptions"]
    assert unresolved["by_class"] == RETRYING
    assert unresolved["by_status"] == {"retrying": {"count": 2, "at_stake": {"USD": "38008.22"}}}
    assert unresolved["count"] == 2 and unresolved["at_stake"] == {"USD": "38008.22"}
    assert _json(["status"])["unresolved_exceptions"] == unresolved
    human = runner.invoke(app, ["status"])
    assert human.exit_code == 0, human.output
    assert "unresolved exceptions: 2, at stake 38,008.22 USD" in human.stdout
    assert "none" not in human.stdout
    listed = _json(["exceptions", "list"])
    rows = sorted((e["class"], e["status"], e["amount_at_stake"]) for e in listed["exceptions"])
    assert rows == [("missing_revrec_reference", "retrying", "37808.22 USD"),
                    ("sequencing_error", "retrying", "200.00 USD")]
    assert listed["count"] == 2 and listed["at_stake"] == {"USD": "38008.22"}
    assert _json(["exceptions", "list", "--status", "retrying"])["count"] == 2
    assert _json(["exceptions", "list", "--status", "open"])["count"] == 0
    assert _json(["exceptions", "list", "--status", "all", "--class", "sequencing_error"]
                 )["count"] == 1
    human_list = runner.invoke(app, ["exceptions", "list"])
    footer = "2 exception(s), status unresolved; unresolved money at stake: 38,008.22 USD"
    assert footer in human_list.stdout


def test_run_waits_for_due_retries(workdir: Path) -> None:
    """Finding 9: `run` returned while deliveries were still waiting to retry."""
    _retries_after(workdir, "0.2", "0.5")
    _json(["ingest", str(REFERENCE)])
    status = _json(["run"])["status"]  # one run, no loop around it
    # 11, 3 documents to the tax engine, and the customer to the ERP's parties
    assert status["deliveries"] == {"done": 15}
    assert status["waiting"] == {"retrying": 0, "next_retry_at": None, "due": 0,
                                 "in_flight": 0}
    assert status["unresolved_exceptions"]["count"] == 0
    resolved = _json(["exceptions", "list", "--status", "resolved"])["exceptions"]
    assert sorted(e["class"] for e in resolved) == sorted(RETRYING)


def test_run_says_what_still_waits_beyond_its_budget(workdir: Path) -> None:
    """Finding 9: `run` returned without saying that deliveries wait to retry."""
    _retries_after(workdir, "86400", "86400")
    _json(["ingest", str(REFERENCE)])
    started = time.monotonic()
    result = runner.invoke(app, ["run", "--wait-max-s", "2"])
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started < 60  # a retry a day away is not waited for
    assert "waiting to be delivered: 2 to retry (the next at " in result.stdout
    waiting = _json(["status"])["waiting"]
    assert waiting["retrying"] == 2 and waiting["next_retry_at"] is not None


def test_unknown_exception_filters_are_refused_with_the_allowed_values(workdir: Path) -> None:
    """Finding 9: `exceptions list --status bogus` gave an empty list and exited 0."""
    error = _json(["exceptions", "list", "--status", "bogus"], code=1)["error"]
    assert error["code"] == "unknown_status"
    allowed = "allowed: unresolved, open, retrying, awaiting_approval, resolved, ignored, all"
    assert allowed in error["message"]
    error = _json(["exceptions", "list", "--class", "bogus"], code=1)["error"]
    assert error["code"] == "unknown_exception_class" and "sequencing_error" in error["message"]
    human = runner.invoke(app, ["exceptions", "list", "--status", "bogus"])
    assert human.exit_code == 1 and "error (unknown_status)" in human.stderr
