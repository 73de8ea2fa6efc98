"""The README's first command: a year of the reference workflow on the embedded systems,
every injected fault caught by the control that owns it, and the books reconciling."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from finsync.cli.main import app
from finsync.demo.run import run_demo


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run_demo(tmp_path_factory.mktemp("demo"))


def test_the_json_report_has_what_finance_reads(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--directory", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    for key in ("invoices", "journal_entries", "revenue_recognized", "reconciliation",
                "exceptions", "duplicates_ignored", "correlation_chains_complete"):
        assert key in printed
    assert set(printed["exceptions"]) >= {"open", "resolved", "by_class"}


def test_books_reconcile_to_the_cent(report: dict[str, Any]) -> None:
    recon = report["reconciliation"]
    assert recon["total_variance"] == {"EUR": "0.00", "USD": "0.00"}
    assert {c["name"] for c in recon["checks"]} == {
        "billing_vs_erp_ar", "contract_value_vs_transaction_price",
        "credit_memos_vs_deferred_adjustments", "payments_vs_ar_applications",
        "recognised_vs_gl_revenue", "deferred_revenue_rollforward", "tax_vs_tax_payable"}
    assert all(c["variance"] == "0.00" and c["breaks"] == 0 for c in recon["checks"])
    assert len(report["revenue_recognized"]) == 12  # twelve month-ends, each closed
    assert sum(1 for c in report["closes"] if c["status"] == "closed") == 24  # two entities


def test_every_injected_fault_is_caught_by_its_class(report: dict[str, Any]) -> None:
    assert len(report["faults"]) == 4 and all(f["caught"] for f in report["faults"])
    by_class = report["exceptions"]["by_class"]
    assert by_class["closed_period"] == 1 and by_class["missing_revrec_reference"] >= 1
    assert by_class["mapping_error"] == 1
    assert report["exceptions"]["open"] == 0
    assert report["duplicates_ignored"] == 1 and report["parked_out_of_order"] >= 1


def test_the_reroute_needed_a_second_person(report: dict[str, Any]) -> None:
    steps = [(a["action"], a["by"], a["status"]) for a in report["triage_actions"]]
    assert ("reroute", "ar.clerk", "pending_approval") in steps
    assert ("approve", "ar.clerk", "refused") in steps
    refusals = [a["code"] for a in report["triage_actions"] if a["status"] == "refused"]
    # without the approve scope; then with it, as the same person spelled in capitals
    assert refusals == ["forbidden", "same_person"]
    assert ("reroute", "controller", "done") in steps


def test_correlation_chains_are_complete_and_replay_changes_nothing(
        report: dict[str, Any]) -> None:
    assert report["correlation_chains_complete"] is True
    milestones = {m["milestone"] for m in report["amendment_timeline"]}
    assert {"contract_accepted", "invoice_posted", "payment_applied",
            "revenue_schedule_created"} <= milestones
    assert report["books_unchanged_by_replay"] is True
    assert report["amendment_status"]["technical"] == "delivered"
    assert report["amendment_status"]["financial"] == "booked_and_recognised"
