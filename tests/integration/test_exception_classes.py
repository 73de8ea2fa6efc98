"""Exception classes raised for real through the hub and worked to resolution: an ownership
violation resolved with a note, a version gap that resolves itself when it fills, a payment
that outlived its retries resolved by a manual retry once its invoice exists, and a master
data mismatch fixed in the ERP and retried. (closed_period and reconciliation_break:
test_triage.py; missing_revrec_reference and mapping_error: test_demo.py.)"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from finsync.bootstrap import Finance, build_ledger_service
from finsync.config import DEFAULT_CONFIG, parse_config
from finsync.demo.clock import SimClock
from finsync.systems.ledger.chart import DEFAULT_CHART, parse_chart
from tests.builders import contract_doc, envelope, invoice_doc, payment_doc, seats_amendment
from tests.hubkit import ledger_world, send_events
from tests.people import ALICE, BOB


@pytest.fixture
def world(tmp_path: Path, db_url: str,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Finance, SimClock]]:
    yield from ledger_world(tmp_path, db_url, monkeypatch)


def _one(finance: Finance, klass: str, status: str | None = "open") -> dict[str, object]:
    [row] = finance.triage.listing(status=status, exception_class=klass)
    return row


def test_ownership_violation_is_kept_and_resolved_with_a_note(
        world: tuple[Finance, SimClock]) -> None:
    finance, _ = world
    send_events(finance, envelope("payment.applied", "crm-1", ("payment", "pay_crm", None),
                                  {"payment": payment_doc("pay_crm", "10.00", "inv_x")},
                                  correlation_id="c1", source="crm"))
    row = _one(finance, "ownership_violation")
    done = finance.triage.resolve(int(str(row["id"])), ALICE,
                                  "CRM sandbox sent a payment; billing owns payments")
    assert done.status == "done"
    shown = finance.triage.show(int(str(row["id"])))
    assert shown["status"] == "resolved" and shown["actions"][0]["requested_by"] == "alice"


def test_a_version_gap_opens_sequencing_error_and_resolves_when_filled(
        world: tuple[Finance, SimClock]) -> None:
    finance, clock = world
    v2 = seats_amendment(12)
    send_events(finance, v2)
    clock.tick(finance.hub.settings.gap_wait_s + 1)
    finance.hub.run_until_idle()
    assert _one(finance, "sequencing_error")["correlation_id"] == "amd_1"
    send_events(finance, envelope("contract.created", "con-v1",
                                  ("subscription_contract", "con_1", 1),
                                  {"contract": contract_doc("con_1", 1, 10, "120.00")},
                                  correlation_id="ord_1"))
    row = _one(finance, "sequencing_error", status="resolved")
    assert "gap filled" in str(row["resolution_note"])


def test_a_payment_that_outlived_its_retries_posts_on_manual_retry(
        world: tuple[Finance, SimClock]) -> None:
    finance, clock = world
    send_events(finance, envelope("payment.applied", "pay-1", ("payment", "pay_1", None),
                                  {"payment": payment_doc("pay_1", "100.00", "inv_1")},
                                  correlation_id="ord_1"))
    for _ in range(12):  # the invoice it settles never comes: retries run out
        clock.tick(600)
        finance.hub.run_until_idle()
    row = _one(finance, "sequencing_error")
    assert finance.hub.status()["deliveries"] == {"dead": 1}
    send_events(finance, envelope("invoice.issued", "inv-1", ("invoice", "inv_1", None),
                                  {"invoice": invoice_doc("inv_1", "100.00")},
                                  correlation_id="ord_1"))
    outcome = finance.triage.retry(int(str(row["id"])), BOB, "invoice INV_1 is in now")
    assert outcome.status == "done"
    finance.hub.run_until_idle()
    assert _one(finance, "sequencing_error", status="resolved")
    assert finance.hub.status()["deliveries"] == {"done": 2}


def test_master_data_mismatch_fixed_in_the_erp_then_retried(
        world: tuple[Finance, SimClock], tmp_path: Path) -> None:
    finance, clock = world
    document = invoice_doc("inv_9", "50.00") | {"legal_entity": "le_ca"}
    send_events(finance, envelope("invoice.issued", "inv-9", ("invoice", "inv_9", None),
                                  {"invoice": document}, correlation_id="ord_9"))
    row = _one(finance, "master_data_mismatch")
    assert row["amount_at_stake"] == "50.00 USD"
    config = parse_config(tomllib.loads(DEFAULT_CONFIG.read_text()), tmp_path)
    books = build_ledger_service(config, finance.hub.engine, clock=clock)
    books.create_entity("le_ca", "Acme Canada", "USD", parse_chart(DEFAULT_CHART.read_text()))
    books.open_year("le_ca", 2026)
    finance.triage.retry(int(str(row["id"])), BOB, "le_ca set up in the ERP")
    finance.hub.run_until_idle()
    assert _one(finance, "master_data_mismatch", status="resolved")
    assert books.trial_balance("le_ca", date(2026, 12, 31))
