"""`finsync cpq` as a person uses it: a file drop loaded and ordered from billing, its
quote-to-cash status, a replay that changes nothing, the catalogue map shown and checked;
bad input refused with a code and a non-zero exit. On SQLite and PostgreSQL.

The file holds the reference contract (`demo.cpq`): the customer, then version 1 (500
seats), 2 (800 seats + analytics, 15 May) and 3 (820 seats, 29 May), in the wrong order."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from finsync.cli.main import app
from finsync.config import DEFAULT_CONFIG
from finsync.connectors.cpq.document import encode
from finsync.demo import cpq
from tests.clikit import cli_json, runner, with_auth
from tests.hubkit import run_settled

SENT = datetime(2026, 5, 29, 17, tzinfo=UTC)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str) -> Path:
    """The shipped configuration, whose CPQ source `cpq` owns customers here, an
    operator's `[auth]`, and the database migrated."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FINSYNC_DATABASE_URL", db_url)
    text = DEFAULT_CONFIG.read_text()
    text = text.replace('[ownership]\ncustomer = "billing"\n', '[ownership]\ncustomer = "cpq"\n')
    (tmp_path / "finsync.toml").write_text(with_auth(text))
    cli_json(["db", "upgrade"])
    return tmp_path


def _drop(folder: Path) -> Path:
    """The customer, then the contract's versions 3, 1, 2 (the hub orders them 1, 2, 3)."""
    v1, v2, v3 = cpq.versions()
    bodies = [encode(cpq.customer(), SENT), *(encode(v, SENT) for v in (v3, v1, v2))]
    path = folder / "cpq.jsonl"
    path.write_bytes(b"\n".join(bodies) + b"\n")
    return path


def test_a_file_drop_is_ordered_from_billing_once_and_replays_change_nothing(
        workdir: Path) -> None:
    loaded = cli_json(["cpq", "load", str(_drop(workdir))])
    assert loaded == {"source": "cpq", "file": str(workdir / "cpq.jsonl"), "versions": 4,
                      "stored": 4}
    run_settled(cli_json)
    # an order is applied once billing's contract event (pumped in by the next run) agrees
    settled = run_settled(cli_json)
    status = cli_json(["cpq", "status", cpq.CONTRACT])
    assert [(v["cpq_version"], v["quote_id"], v["order_state"]) for v in status["versions"]] \
        == [(1, cpq.ORDER, "applied"), (2, cpq.UPGRADE, "applied"), (3, cpq.ADD_ON, "applied")]
    assert status["renewal_baseline"]["cpq_version"] == 3
    done = settled["status"]["deliveries"]
    replay = cli_json(["cpq", "replay", "--reason", "billing restored from backup"])
    assert replay["replay"]["events"] == 3  # the contract's versions, not the customer
    assert run_settled(cli_json)["status"]["deliveries"] == done
    assert cli_json(["cpq", "status", cpq.CONTRACT]) == status  # nothing applied twice
    listing = cli_json(["cpq", "status"])
    assert [c["contract_id"] for c in listing["contracts"]] == [cpq.CONTRACT]
    assert cli_json(["cpq", "load", str(workdir / "cpq.jsonl")])["stored"] == 4
    assert run_settled(cli_json)["status"]["deliveries"] == done  # a re-sent file: duplicates


def test_a_file_with_a_problem_is_refused_whole(workdir: Path) -> None:
    path = workdir / "bad.jsonl"
    good = encode(cpq.original_order(), SENT)
    path.write_bytes(good + b"\n{not json\n")
    refused = cli_json(["cpq", "load", str(path)], code=1)
    assert refused["error"]["code"] == "file_invalid"
    assert [p["row"] for p in refused["problems"]] == [2]
    assert cli_json(["status"])["raw_events"] == {}  # nothing stored, not even line 1


def test_bad_input_exits_non_zero_with_a_code(workdir: Path) -> None:
    drop = _drop(workdir)
    cases = [
        (["cpq", "load", str(drop), "--source", "billing"], 1, "unknown_source"),
        (["cpq", "load", str(workdir / "missing.jsonl")], 1, "file_not_found"),
        (["cpq", "status", "con_nowhere"], 1, "not_found"),
        (["cpq", "replay"], 2, "reason_required"),
        (["cpq", "status", "c" * 256], 2, "invalid_argument"),
        (["cpq", "replay", "--quote", "q" * 256, "--reason", "x"], 2, "invalid_argument"),
    ]
    for args, code, error in cases:
        assert cli_json(args, code=code)["error"]["code"] == error, args
    plain = runner.invoke(app, ["cpq", "load", str(workdir / "missing.jsonl")])
    assert plain.exit_code == 1 and "file_not_found" in plain.output  # without --json too


def test_the_catalogue_map_is_shown_and_checked(workdir: Path) -> None:
    shown = cli_json(["cpq", "catalog", "show"])
    assert shown["version"] == 1
    assert [p["code"] for p in shown["products"]] == [cpq.ANALYTICS, cpq.SEATS, cpq.OVERAGE]
    assert cli_json(["cpq", "catalog", "check"])["new_version"] is False
    wrong = workdir / "map.toml"
    wrong.write_text('[[products]]\ncode = "SEATS-ANNUAL"\nbilling_product = '
                     '"prod_platform_seat"\nprices = { USD = "price_seat_monthly" }\n'
                     'ssp_product = "prod_platform_seat"\nrevenue_account = "4000"\n')
    refused = cli_json(["cpq", "catalog", "check", str(wrong)], code=1)["error"]
    assert refused["code"] == "config_error"
    assert refused["message"].endswith("product SEATS-ANNUAL: billing has no price "
                                       "price_seat_monthly")
    assert cli_json(["cpq", "catalog", "show"])["version"] == 1  # a check loads nothing
    missing = cli_json(["cpq", "catalog", "check", str(workdir / "none.toml")], code=1)
    assert missing["error"]["code"] == "file_not_found"


def test_an_order_held_for_an_unmapped_product_shows_with_its_money(workdir: Path) -> None:
    """Version 1 names a product the catalogue map lacks: held before billing, and the
    status says so with the money at stake."""
    v1 = cpq.original_order()
    odd = replace(v1, lines=(replace(v1.lines[0], product_code="SEATS-GOLD"), v1.lines[1]))
    path = workdir / "odd.jsonl"
    path.write_bytes(encode(cpq.customer(), SENT) + b"\n" + encode(odd, SENT) + b"\n")
    cli_json(["cpq", "load", str(path)])
    run_settled(cli_json)
    status = cli_json(["cpq", "status", cpq.CONTRACT])
    assert [v["order_state"] for v in status["versions"]] == ["held"]
    shown = runner.invoke(app, ["cpq", "status", cpq.CONTRACT], env={"COLUMNS": "250"})
    assert shown.exit_code == 0, shown.output
    assert "master_data_mismatch" in shown.output and "at stake" in shown.output
