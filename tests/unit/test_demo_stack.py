"""The real-stack demo's pure parts: the year's calendar, what a step needs of Stripe, a
Stripe invoice in the report, and what keeps a year from having reconciled."""

from __future__ import annotations

import dataclasses
import tomllib
from datetime import UTC, date, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from finsync.config import parse_config
from finsync.demo.stack import plan
from finsync.demo.stack_config import StackSettings, config_text
from finsync.demo.stack_report import problems, stripe_invoice
from finsync.demo.stripe_steps import CREDIT_NOTES, METERS, PRICES, TEST_CLOCKS, Capabilities
from tests.stripeshapes import shaped

LOCALSTRIPE = Capabilities({PRICES: "GET /v1/prices answered 404", CREDIT_NOTES: "404",
                            METERS: "404", TEST_CLOCKS: "404"})


def test_from_1_january_the_calendar_is_the_embedded_demos() -> None:
    # day 134 is 15 May, day 223 12 August, day 247 5 September (2026 is no leap year)
    steps = {p.key: p.at.date() for p in plan(datetime(2026, 1, 1, 8, tzinfo=UTC))}
    assert (steps["upgrade"], steps["sla_credit"], steps["refund"]) == (
        date(2026, 5, 15), date(2026, 8, 12), date(2026, 9, 5))
    closes = [k for k in steps if k.startswith("close_")]
    assert closes == [f"close_2026-{m:02d}" for m in range(1, 13)]
    assert steps["close_2026-12"] == date(2027, 1, 1)
    assert steps["usage_00"] == date(2026, 1, 21) and steps["usage_11"] == date(2026, 12, 21)


def test_the_year_runs_in_date_order_from_any_day() -> None:
    start = datetime(2026, 12, 6, 9, 30, tzinfo=UTC)
    planned = plan(start)
    assert [p.key for p in planned[:2]] == ["subscribe", "subscribe_usage"]
    assert all(a.at <= b.at for a, b in pairwise(planned))
    closes = [p.key for p in planned if p.key.startswith("close_")]
    assert closes[0] == "close_2026-12" and closes[-1] == "close_2027-11" and len(closes) == 12
    # the last step falls before the seats renew (6 December 2027)
    assert planned[-1].at < datetime(2027, 12, 6, tzinfo=UTC)


def test_a_step_names_what_this_stripe_lacks() -> None:
    assert LOCALSTRIPE.lacking(()) is None
    assert LOCALSTRIPE.lacking((PRICES, TEST_CLOCKS)) == "Prices API, test clocks"
    assert Capabilities({}).lacking((PRICES, METERS, CREDIT_NOTES, TEST_CLOCKS)) is None
    assert not LOCALSTRIPE.has(METERS) and Capabilities({}).has(METERS)


def test_a_stripe_invoice_reads_as_the_embedded_demos_invoice() -> None:
    # Stripe's example, finalized and paid in part: total 1,000 cents, 400 paid, 100
    # credited after payment, so 500 remain (Stripe's own amount_remaining)
    obj = shaped("invoice", id="in_1", number="ACME-0001", status="open", total=1000,
                 amount_paid=400, amount_remaining=500, post_payment_credit_notes_amount=100,
                 status_transitions={"finalized_at": 1_795_810_008, "paid_at": None,
                                     "marked_uncollectible_at": None, "voided_at": None},
                 parent={"type": "subscription_details", "quote_details": None,
                         "subscription_details": {"subscription": "sub_1",
                                                  "metadata": None}})
    assert stripe_invoice(obj) == {
        "number": "ACME-0001", "id": "in_1", "issue_date": "2026-11-27",
        "contract_version": None, "total": "10.00", "credited": "1.00", "paid": "4.00",
        "due": "5.00", "currency": "USD", "status": "open", "correlation_id": "stripe:sub_1"}


def test_an_older_shape_invoice_has_what_is_due_and_not_paid() -> None:
    # localstripe: no amount_remaining, the subscription at the top level, JPY in yen
    obj = {"id": "in_2", "currency": "jpy", "total": 60000, "amount_due": 60000,
           "amount_paid": 0, "created": 1_795_810_008, "subscription": "sub_2",
           "status": "open"}
    got = stripe_invoice(obj)
    assert (got["total"], got["due"], got["correlation_id"]) == ("60000", "60000",
                                                                 "stripe:sub_2")


def _clean() -> dict[str, Any]:
    return {"reconciliation": {"total_variance": {"USD": "0.00"}, "checks": [
                {"name": "billing_vs_erp_ar", "legal_entity": "le_us", "breaks": 0,
                 "variance": "0.00", "currency": "USD"}]},
            "closes": [{"period": "2026-12", "status": "closed"}],
            "steps": [{"step": "upgrade", "status": "skipped", "detail": "no Prices"}],
            "exceptions": {"open": 0}, "books_unchanged_by_replay": True}


def test_a_year_with_skipped_steps_can_reconcile() -> None:
    assert problems(_clean()) == []


@pytest.mark.parametrize(("change", "says"), [
    (lambda r: r["reconciliation"]["checks"][0].update(variance="-0.01"), "variance -0.01"),
    (lambda r: r["reconciliation"]["checks"][0].update(breaks=1), "1 breaks"),
    (lambda r: r["closes"][0].update(status="awaiting_reroute"), "close 2026-12"),
    (lambda r: r.update(closes=[]), "no month was closed"),
    (lambda r: r["steps"][0].update(status="failed"), "step failed: upgrade"),
    (lambda r: r["exceptions"].update(open=2), "2 exceptions unresolved"),
    (lambda r: r.update(books_unchanged_by_replay=False), "replaying"),
])
def test_what_keeps_a_year_from_having_reconciled_is_named(change: Any, says: str) -> None:
    result = _clean()
    change(result)
    found = problems(result)
    assert len(found) == 1 and says in found[0]


def test_the_hub_url_is_written_unless_it_holds_a_password(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    plain = StackSettings("http://stripe", "http://tryton", "books",
                          "postgresql://finsync@db:5432/demo")
    config = parse_config(tomllib.loads(config_text(plain, (2026, 2027), meters=True)),
                          tmp_path)
    assert config.database_url == plain.database_url and config.usage.stripe == {
        "stripe_meters": "stripe"}
    secret = dataclasses.replace(plain, database_url="postgresql://finsync:s3cret@db/demo")
    text = config_text(secret, (2026, 2027), meters=False)
    assert "s3cret" not in text and "[usage" not in text
    monkeypatch.setenv("FINSYNC_DATABASE_URL", secret.database_url)
    assert parse_config(tomllib.loads(text), tmp_path).database_url == secret.database_url
