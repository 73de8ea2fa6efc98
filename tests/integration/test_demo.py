"""The README's first command: the demo runs the reference workflow through the hub and
every injected fault is caught by the control that owns it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finsync.cli.demo import run_demo


def test_demo_catches_every_injected_fault(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    report = run_demo(tmp_path, as_json=True)
    printed = json.loads(capsys.readouterr().out)
    assert printed["controls"] == report["controls"]
    assert all(c["caught"] for c in report["controls"]), report["controls"]
    milestones = [m["milestone"] for m in report["amendment_timeline"]]
    assert milestones[0] == "contract_accepted"
    assert sorted(milestones[1:]) == ["invoice_posted", "payment_applied",
                                      "revenue_schedule_created"]
    assert len(report["journal_entries"]) == 6 and report["books_unchanged_by_replay"]
    assert report["trial_balance"]["le_us"] == {
        "1000": "97608.22 USD", "1200": "0.00 USD", "2300": "0.00 USD",
        "2400": "-97608.22 USD"}  # cash in, all billed revenue still deferred
    assert all(check["difference"] == "0.00"
               for check in report["subledgers"]["le_us"].values())


def test_demo_starts_from_a_fresh_database_each_time(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    first = run_demo(tmp_path, as_json=True)
    second = run_demo(tmp_path, as_json=True)
    capsys.readouterr()
    assert first["status"] == second["status"]
