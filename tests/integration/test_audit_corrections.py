"""Automatic corrections are in the trail, by `system:<component>`: the hub resolving a
delivery's exception after a successful retry (system:delivery), sequencing resolving a
gap once it fills (system:sequencing), reconciliation resolving a break that agrees again
(system:recon). The trail still verifies. On both backends."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from finsync.audit.signing import Keyring
from finsync.audit.tables import trail
from finsync.audit.verify import verify
from finsync.bootstrap import Finance
from finsync.demo.clock import SimClock
from finsync.domain.errors import ExceptionClass
from finsync.domain.money import Money
from finsync.recon import queue
from finsync.recon.model import CheckResult, Item
from finsync.storage import exception_log
from finsync.storage.db import reading, transaction
from tests.builders import contract_doc, envelope, invoice_doc, payment_doc, seats_amendment
from tests.hubkit import ledger_world, send_events

AT = datetime(2026, 2, 1, 9, tzinfo=UTC)


@pytest.fixture
def world(tmp_path: Path, db_url: str,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Finance, SimClock]]:
    yield from ledger_world(tmp_path, db_url, monkeypatch)


def _records(engine: Engine) -> list[dict[str, Any]]:
    with reading(engine) as conn:
        rows = conn.execute(select(trail).order_by(trail.c.seq)).mappings()
        return [dict(r) for r in rows]


def _corrections(engine: Engine) -> list[tuple[Any, ...]]:
    with reading(engine) as conn:
        assert verify(conn, Keyring.of(None)).ok
    return [(r["actor"], r["action"], r["object_type"], r["object_id"], r["before"],
             r["after"]) for r in _records(engine)]


def _exception(finance: Finance, klass: str) -> dict[str, Any]:
    [row] = finance.triage.listing(status=None, exception_class=klass)
    return row


def test_a_retry_that_succeeds_is_recorded_as_system_delivery(
        world: tuple[Finance, SimClock]) -> None:
    """The payment waits for its invoice (a sequencing_error the hub retries); the invoice
    comes, the next retry posts the payment and the hub resolves the exception itself."""
    finance, clock = world
    send_events(finance, envelope("payment.applied", "pay-1", ("payment", "pay_1", None),
                                  {"payment": payment_doc("pay_1", "100.00", "inv_1")},
                                  correlation_id="ord_1"))
    retrying = _exception(finance, "sequencing_error")
    assert retrying["status"] == "retrying" and _records(finance.hub.engine) == []
    send_events(finance, envelope("invoice.issued", "inv-1", ("invoice", "inv_1", None),
                                  {"invoice": invoice_doc("inv_1", "100.00")},
                                  correlation_id="ord_1"))
    clock.tick(600)
    finance.hub.run_until_idle()
    assert _exception(finance, "sequencing_error")["status"] == "resolved"
    [record] = _records(finance.hub.engine)
    assert (record["actor"], record["action"], record["object_id"], record["before"],
            record["after"], record["correlation_id"]) == (
        "system:delivery", "exception.auto_resolve", str(retrying["id"]),
        '{"status":"retrying"}', '{"status":"resolved"}', "ord_1")
    assert record["reason"].startswith("delivered to ledger")
    assert len(_corrections(finance.hub.engine)) == 1


def test_a_filled_version_gap_is_recorded_as_system_sequencing(
        world: tuple[Finance, SimClock]) -> None:
    finance, clock = world
    amended = seats_amendment(12)
    send_events(finance, amended)
    clock.tick(finance.hub.settings.gap_wait_s + 1)
    finance.hub.run_until_idle()
    gap = _exception(finance, "sequencing_error")
    send_events(finance, envelope("contract.created", "con-v1",
                                  ("subscription_contract", "con_1", 1),
                                  {"contract": contract_doc("con_1", 1, 10, "120.00")},
                                  correlation_id="ord_1"))
    assert _corrections(finance.hub.engine) == [
        ("system:sequencing", "exception.auto_resolve", "exception", str(gap["id"]),
         '{"status":"open"}', '{"status":"resolved"}')]


def test_a_break_that_agrees_again_is_recorded_as_system_recon(engine: Engine) -> None:
    usd = Money.of("250.00", "USD")
    broken = Item("invoice:inv_stray", usd, Money.of("0.00", "USD"), cause="missing in ERP")
    agreeing = Item("invoice:inv_stray", usd, usd)
    with transaction(engine) as conn:
        queue.sync(conn, "le_us", date(2026, 1, 31),
                   [CheckResult("billing_vs_erp_ar", "le_us", "USD", (broken,))], AT)
    with transaction(engine) as conn:
        [(fingerprint, _status, _detail)] = exception_log.unresolved_by_prefix(
            conn, ExceptionClass.RECONCILIATION_BREAK, "recon:le_us:")
        [row] = exception_log.listing(conn, status="open")
        queue.sync(conn, "le_us", date(2026, 1, 31),
                   [CheckResult("billing_vs_erp_ar", "le_us", "USD", (agreeing,))], AT)
    assert fingerprint == "recon:le_us:billing_vs_erp_ar:invoice:inv_stray"
    assert _corrections(engine) == [
        ("system:recon", "exception.auto_resolve", "exception", str(row["id"]),
         '{"status":"open"}', '{"status":"resolved"}')]
