"""The file-drop ledger writes each dispute document as the ERP that imports it reads it:
one line per key, its kind the event's aggregate type, a closure with nothing unrecovered
too (the importing ERP decides what it books)."""

from __future__ import annotations

from pathlib import Path

from finsync.connectors.filedrop.ledger import FileDropLedger
from finsync.connectors.ports import DeliveryContext
from tests.ledgerkit import dispute_closure, dispute_funds


def _ctx(key: str) -> DeliveryContext:
    return DeliveryContext(key, f"evt-{key}", "stripe:pi_1")


def test_dispute_documents_are_written_once_each(tmp_path: Path) -> None:
    ledger = FileDropLedger("ledger", tmp_path)
    taken = ledger.post_dispute_funds(dispute_funds("txn_w", "-100.00", "15.00"), _ctx("k1"))
    ledger.post_dispute_funds(dispute_funds("txn_r", "100.00", "-15.00"), _ctx("k2"))
    ledger.post_dispute_closure(dispute_closure("won", "-100.00", "100.00"), _ctx("k3"))
    again = ledger.post_dispute_funds(dispute_funds("txn_w", "-100.00", "15.00"), _ctx("k1"))
    assert again == taken
    lines = ledger.documents()
    assert [(line["kind"], line["document"]["id"]) for line in lines] == [
        ("dispute_funds", "txn_w"), ("dispute_funds", "txn_r"), ("dispute_closure", "du_1")]
    assert lines[0]["document"]["amount"] == {"amount": "-100.00", "currency": "USD"}
    assert lines[2]["document"]["unrecovered"] == {"amount": "0.00", "currency": "USD"}
