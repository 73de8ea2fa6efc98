"""Summary posting against two embedded ledgers fed the same stream: one in detail, one in
daily summaries. Totals per account and receivables per customer agree to the cent; each
summary line names exactly the documents it covers; a replay posts nothing twice."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from finsync.connectors.embedded.ledger import EmbeddedLedger
from finsync.connectors.ports import LedgerEvent
from finsync.domain.errors import TransientError
from finsync.domain.events import CreditMemoIssued, InvoiceIssued, PaymentApplied, RefundIssued
from finsync.domain.journal import JournalEntry, Side
from finsync.hub.buffer import BufferPolicy
from finsync.hub.replay import ReplayFilter
from finsync.storage import outbox
from finsync.storage.db import make_engine, reading
from finsync.storage.schema import summary_members
from finsync.systems.ledger.chart import Role
from finsync.systems.ledger.service import LedgerService
from tests.bufferkit import buffered_hub, drain, event, statuses
from tests.hubkit import Clock, ingest
from tests.ledgerkit import CHART, credit_memo, invoice, ledger_service, payment, refund

AS_OF = date(2026, 12, 31)
ENTITIES = ("le_us", "le_eu")


def _stream() -> list[list[LedgerEvent]]:
    """Three waves (what is paid or credited was invoiced in an earlier wave)."""
    invoices: list[LedgerEvent] = [
        InvoiceIssued(invoice("inv_1", ["100.00", "50.00"], tax="5.00", customer="cus_1",
                              products=["prod_seat", "prod_services"], on=date(2026, 1, 10))),
        InvoiceIssued(invoice("inv_2", ["200.00"], customer="cus_2", on=date(2026, 1, 10))),
        InvoiceIssued(invoice("inv_3", ["80.00"], customer="cus_1", on=date(2026, 1, 11))),
        InvoiceIssued(invoice("inv_4", ["300.00"], currency="EUR", customer="cus_3",
                              entity="le_eu", on=date(2026, 1, 10))),
        InvoiceIssued(invoice("inv_5", ["90.00"], currency="EUR", customer="cus_4",
                              entity="le_eu", on=date(2026, 1, 10))),
        InvoiceIssued(invoice("inv_fx", ["1000.00"], currency="EUR", customer="cus_2",
                              on=date(2026, 1, 12))),  # booked in USD at a rate: posted alone
    ]
    settlements: list[LedgerEvent] = [
        PaymentApplied(payment("pay_1", "160.00", {"inv_1": "160.00"}, customer="cus_1",
                               on=date(2026, 1, 20))),
        PaymentApplied(payment("pay_2", "250.00", {"inv_2": "200.00"}, customer="cus_2",
                               on=date(2026, 1, 20))),  # 50.00 unapplied: a customer credit
        PaymentApplied(payment("pay_3", "100.00", {"inv_4": "100.00"}, currency="EUR",
                               customer="cus_3", entity="le_eu", on=date(2026, 1, 21))),
        PaymentApplied(payment("pay_fx", "1000.00", {"inv_fx": "1000.00"}, currency="EUR",
                               customer="cus_2",
                               on=date(2026, 3, 5))),  # realised FX, in both ledgers alike
        CreditMemoIssued(credit_memo("cm_1", "inv_3", "30.00", customer="cus_1")),
        CreditMemoIssued(credit_memo("cm_2", "inv_5", "40.00", currency="EUR",
                                     customer="cus_4", entity="le_eu")),
    ]
    refunds: list[LedgerEvent] = [RefundIssued(refund("ref_1", "20.00", customer="cus_2"))]
    return [invoices, settlements, refunds]


def _run(engine: Engine, tmp_path: Path) -> tuple[Any, LedgerService, LedgerService, Clock]:
    detail_engine = make_engine(f"sqlite:///{tmp_path / 'detail-ledger.db'}")
    detail, summary = ledger_service(detail_engine), ledger_service(engine)
    clock = Clock()
    hub = buffered_hub(engine, {
        "detail": (EmbeddedLedger("detail", detail, max_batch=4), BufferPolicy()),
        "summary": (EmbeddedLedger("summary", summary),
                    BufferPolicy(posting="daily_summary"))}, clock)
    for wave in _stream():
        ingest(hub, [event(e) for e in wave])
        drain(hub, clock)
    return hub, detail, summary, clock


def _receivables(entries: list[JournalEntry], ar: str) -> dict[str, Decimal]:
    net: dict[str, Decimal] = defaultdict(Decimal)
    for entry in entries:
        for line in entry.lines:
            if line.account == ar:
                sign = 1 if line.side is Side.DEBIT else -1
                net[dict(line.dimensions)["customer"]] += sign * line.amount.amount
    return dict(net)


def test_summaries_agree_with_detail_and_list_their_documents(engine: Engine,
                                                               tmp_path: Path) -> None:
    hub, detail, summary, _ = _run(engine, tmp_path)
    assert statuses(hub) == {"done": 2 * sum(len(w) for w in _stream())}
    for entity in ENTITIES:
        assert [(r.account, r.debit, r.credit) for r in summary.trial_balance(entity, AS_OF)] \
            == [(r.account, r.debit, r.credit) for r in detail.trial_balance(entity, AS_OF)]
        ar = CHART.code_for(Role.ACCOUNTS_RECEIVABLE)
        assert _receivables(summary.entries(entity), ar) == \
            _receivables(detail.entries(entity), ar)
    summaries = [e for e in summary.entries() if e.memo.startswith("Summary of")]
    assert len(summary.entries()) == len(summaries) + 2  # the EUR invoice and its payment
    assert len(summaries) < len(detail.entries()) - 2
    _each_line_lists_its_documents(hub, summary, summaries)


def _each_line_lists_its_documents(hub: Any, ledger: LedgerService,
                                   summaries: list[JournalEntry]) -> None:
    port = EmbeddedLedger("summary", ledger)
    documents = {e.document.id: e for wave in _stream() for e in wave}
    with reading(hub.engine) as conn:
        rows = conn.execute(select(summary_members)).mappings().all()
    members: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        members[r["summary_key"]].add(r["document_id"])
    assert sorted(d for m in members.values() for d in m) == \
        sorted(d for d in documents if not d.endswith("_fx"))
    for entry in summaries:
        covered = members[dict(entry.source_refs)["event"]]
        expected: dict[tuple[str, Side, tuple[tuple[str, str], ...]], set[str]] = \
            defaultdict(set)
        for doc_id in covered:
            for line in port.preview_journal(documents[doc_id]).lines:
                expected[line.account, line.side, line.dimensions].add(doc_id)
        listed = {(ln.account, ln.side, tuple(d for d in ln.dimensions if d[0] != "documents")):
                  set(dict(ln.dimensions)["documents"].split()) for ln in entry.lines}
        assert listed == expected


def test_replay_posts_nothing_twice_and_receipts_point_at_summaries(engine: Engine,
                                                                     tmp_path: Path) -> None:
    hub, detail, summary, clock = _run(engine, tmp_path)
    before = (len(detail.entries()), len(summary.entries()))
    assert hub.replay(ReplayFilter(everything=True)).requeued > 0
    drain(hub, clock)
    assert (len(detail.entries()), len(summary.entries())) == before
    with reading(hub.engine) as conn:
        rows = [r for r in outbox.all_rows(conn) if r["target"] == "summary"]
    assert all(r["status"] == "done" for r in rows)
    pointed = [json.loads(r["result"]) for r in rows]
    summary_ids = {e.id for e in summary.entries()}
    assert all(p["external_id"] in summary_ids for p in pointed)
    assert sum(1 for p in pointed if p["detail"].get("summary")) == len(rows) - 2


@pytest.mark.parametrize("posting", ["detail", "daily_summary"])
def test_a_refused_document_fails_alone_in_an_embedded_batch(
        engine: Engine, posting: str) -> None:
    ledger = ledger_service(engine)
    clock = Clock()
    hub = buffered_hub(engine, {"ledger": (EmbeddedLedger("ledger", ledger),
                                           BufferPolicy(posting=posting))},  # type: ignore[arg-type]
                       clock)
    docs = [invoice("inv_1", ["10.00"]), invoice("inv_2", ["20.00"], entity="le_nowhere"),
            invoice("inv_3", ["30.00"])]
    ingest(hub, [event(InvoiceIssued(d)) for d in docs])
    hub.run_until_idle()
    assert statuses(hub) == {"done": 2, "failed": 1}
    assert [e["class"] for e in hub.exceptions()] == ["master_data_mismatch"]
    assert sum(r.debit.amount for r in ledger.trial_balance("le_us", AS_OF)) == Decimal("40.00")


class _LostAnswer(EmbeddedLedger):
    """Posts, then loses the first answer (a timeout after the ERP committed)."""

    lost = 0

    def post_batch(self, postings: Any) -> Any:
        outcomes = super().post_batch(postings)
        if not self.lost:
            self.lost += 1
            raise TransientError("read timeout")
        return outcomes


def test_a_lost_answer_is_found_again_not_posted_twice(engine: Engine) -> None:
    ledger = ledger_service(engine)
    clock = Clock()
    port = _LostAnswer("ledger", ledger)
    hub = buffered_hub(engine, {"ledger": (port, BufferPolicy(posting="daily_summary"))}, clock)
    ingest(hub, [event(InvoiceIssued(invoice(f"inv_{i}", ["10.00"]))) for i in range(3)])
    hub.run_until_idle()
    assert statuses(hub) == {"pending": 3} and len(ledger.entries()) == 1
    drain(hub, clock)
    assert statuses(hub) == {"done": 3} and len(ledger.entries()) == 1
