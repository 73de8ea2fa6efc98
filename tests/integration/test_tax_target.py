"""The tax engine as a delivery target: invoices issued are committed (milestone
`tax_committed`); an engine that cannot answer is retried as a `retrying` tax_failure, one
that refuses fails the delivery as a tax_failure; the commit's key is its delivery key."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import Engine

from finsync.connectors.ports import DeliveryContext, Receipt
from finsync.domain.invoice import CreditMemo, Invoice
from finsync.domain.tax import TaxRefusedError, TaxRequest, TaxResult, TaxUnavailableError
from finsync.hub.service import Hub
from finsync.hub.target import tax_target
from finsync.storage import exception_log, milestone_log, outbox
from finsync.storage.db import reading
from tests.builders import envelope, invoice_doc
from tests.hubkit import Clock, ingest, make_hub, settings


class FakeTax:
    """A hand-written `TaxPort`: commits by delivery key, or fails as told."""

    system = "tax"

    def __init__(self) -> None:
        self.failure: Exception | None = None
        self.committed: dict[str, str] = {}

    def quote(self, request: TaxRequest) -> TaxResult:
        raise NotImplementedError("billing quotes; the hub only commits")

    def commit_invoice(self, invoice: Invoice, ctx: DeliveryContext) -> Receipt:
        if self.failure is not None:
            raise self.failure
        self.committed.setdefault(ctx.delivery_key, invoice.id)
        return Receipt(f"txn-{invoice.id}")

    def commit_credit_memo(self, memo: CreditMemo, ctx: DeliveryContext) -> Receipt:
        return Receipt(f"txn-{memo.id}")

    def find_receipt(self, key: str) -> Receipt | None:
        found = self.committed.get(key)
        return None if found is None else Receipt(f"txn-{found}")


def _invoice(invoice_id: str = "inv_1") -> bytes:
    return json.dumps(envelope("invoice.issued", invoice_id, ("invoice", invoice_id, None),
                               {"invoice": invoice_doc(invoice_id, "500.00")},
                               correlation_id="thread-1")).encode()


def _world(engine: Engine, tmp_path: Path) -> tuple[FakeTax, Clock, Hub]:
    tax, clock = FakeTax(), Clock()
    hub = make_hub(engine, tmp_path, targets={"tax": tax_target(tax)}, clock=clock,
                   hub_settings=settings({"invoice.issued": ("tax",)}, attempts_max=3))
    return tax, clock, hub


def test_an_invoice_issued_is_committed_once_with_its_milestone(
        engine: Engine, tmp_path: Path) -> None:
    tax, _clock, hub = _world(engine, tmp_path)
    ingest(hub, [_invoice()])
    hub.run_until_idle()
    assert list(tax.committed.values()) == ["inv_1"]
    with reading(engine) as conn:
        names = [m["name"] for m in milestone_log.timeline(conn, "thread-1")]
    assert names == ["tax_committed"]


def test_an_unavailable_engine_is_a_retrying_tax_failure_then_resolved(
        engine: Engine, tmp_path: Path) -> None:
    tax, clock, hub = _world(engine, tmp_path)
    tax.failure = TaxUnavailableError("engine down")
    ingest(hub, [_invoice()])
    hub.run_until_idle()
    with reading(engine) as conn:
        [row] = exception_log.listing(conn)
    assert (row["class"], row["status"]) == ("tax_failure", "retrying")
    assert row["amount_at_stake"] == "500.00 USD"
    assert "tax_unavailable" in row["summary"]
    tax.failure = None
    clock.advance(120)  # past the backoff cap of the test settings (60 s)
    hub.run_until_idle()
    with reading(engine) as conn:
        [row] = exception_log.listing(conn)
    assert row["status"] == "resolved"
    assert list(tax.committed.values()) == ["inv_1"]


def test_a_refusal_fails_the_delivery_as_a_tax_failure(engine: Engine, tmp_path: Path) -> None:
    tax, _clock, hub = _world(engine, tmp_path)
    tax.failure = TaxRefusedError("no jurisdiction for region XX", code="unknown_jurisdiction")
    ingest(hub, [_invoice()])
    hub.run_until_idle()
    with reading(engine) as conn:
        [row] = exception_log.listing(conn)
        [delivery] = outbox.all_rows(conn)
    assert (row["class"], row["status"]) == ("tax_failure", "open")
    assert "unknown_jurisdiction" in row["summary"]
    assert delivery["status"] == "failed"
