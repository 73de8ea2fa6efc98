"""The reference workflow driven from CPQ: the customer, the original order, the 15 May
upgrade and the 29 May add-on enter as CPQ versions 1..3 through the generic CPQ source, and
the hub orders each from the embedded billing platform. The books are the ones the demo
kept before it started from CPQ, to the cent: `tests/fixtures/demo/books.json` is the
report of `finsync demo --json` from the commit before (f55620a), its business parts.

On SQLite (the demo's own database) and on PostgreSQL (FINSYNC_DATABASE_URL)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from finsync.demo.run import run_demo

BOOKS = Path(__file__).parent.parent / "fixtures" / "demo" / "books.json"
# What finance reads, and must not move when the commercial layer comes first.
SAME = ("invoices", "journal_entries", "revenue_recognized", "reconciliation", "trial_balance",
        "closes", "faults", "duplicates_ignored", "parked_out_of_order")
# Row numbers: the CPQ versions and their orders are stored before billing's junk webhook
# and the late payment's delivery, so those are later rows than before.
ROW_NUMBER = re.compile(r"(event #|delivery )\d+")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def report(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("demo")
    if request.param == "sqlite":
        return run_demo(folder)
    from tests.conftest import empty_postgres

    url: str = request.getfixturevalue("pg_database")
    empty_postgres(url)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FINSYNC_DATABASE_URL", url)
        return run_demo(folder)


def _rows_unnumbered(items: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    return [{**item, key: ROW_NUMBER.sub(r"\1n", item[key])} for item in items]


def test_the_books_are_the_ones_before_cpq(report: dict[str, Any]) -> None:
    before = json.loads(BOOKS.read_text())
    for key in SAME:
        assert report[key] == before[key], key
    after_queue, before_queue = report["exceptions"], before["exceptions"]
    assert {**after_queue, "items": None} == {**before_queue, "items": None}
    assert _rows_unnumbered(after_queue["items"], "summary") == _rows_unnumbered(
        before_queue["items"], "summary")
    assert _rows_unnumbered(report["triage_actions"], "detail") == _rows_unnumbered(
        before["triage_actions"], "detail")
    assert report["reconciliation"]["total_variance"] == {"EUR": "0.00", "USD": "0.00"}


def test_each_cpq_version_reached_billing_once_in_order(report: dict[str, Any]) -> None:
    versions = report["cpq"]["versions"]
    assert [(v["version"], v["kind"], v["quote_id"], v["effective_date"]) for v in versions] == [
        (1, "new", "ord_acme_2026", "2026-01-01"),
        (2, "amendment", "amd_acme_0002", "2026-05-15"),
        (3, "amendment", "amd_acme_0003", "2026-05-29")]
    # billing's contract agrees with each (the version check), at the same version
    assert [(v["order"], v["billing_version"]) for v in versions] == [
        ("applied", 1), ("applied", 2), ("applied", 3)]
    invoiced = [(i["contract_version"], i["total"]) for i in report["invoices"]
                if i["issue_date"] in ("2026-01-01", "2026-05-15", "2026-05-29")]
    # 500 x 120.00; 300 x 120.00 x 231/365 + 24,000.00 x 231/365; 20 x 120.00 x 217/365
    assert invoiced == [(1, "60000.00"), (2, "37972.60"), (3, "1426.85")]


def test_the_upgrade_runs_from_cpq_to_revenue(report: dict[str, Any]) -> None:
    upgrade = report["cpq"]["versions"][1]
    reached = [m["milestone"] for m in upgrade["milestones"]]
    assert reached[0] == "order_accepted"  # billing applied the order before anything else
    assert {"contract_accepted", "invoice_posted", "payment_applied",
            "revenue_schedule_created"} <= set(reached)
    assert report["correlation_chains_complete"] is True
    assert report["books_unchanged_by_replay"] is True
    assert report["amendment_status"]["financial"] == "booked_and_recognised"
