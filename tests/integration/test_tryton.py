"""The Tryton connector against a real trytond: lost answers, a killed server, Tryton's own
refusals, batches, and bootstrap run twice."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from finsync.connectors.ports import Posting, Receipt
from finsync.connectors.tryton.bootstrap import BookSpec, bootstrap
from finsync.connectors.tryton.ledger import TrytonLedger
from finsync.connectors.tryton.rpc import TrytonClient
from finsync.domain.errors import ExceptionClass, FinsyncError, PermanentError, TransientError
from finsync.domain.events import InvoiceIssued, PaymentApplied, RevenueJournalRecorded
from finsync.domain.journal import JournalEntry, JournalLine, Side
from finsync.domain.money import Money
from tests.contract.ledger_port import AS_OF, ctx
from tests.external.tryton import TrytonServer
from tests.external.tryton_fixtures import COMPANY, ENTITIES, TrytonBooks
from tests.ledgerkit import invoice, payment


class LosingClient(TrytonClient):
    """Runs the call, then loses its answer, as a proxy that drops the response would."""

    lose: str | None = None

    def call(self, method: str, *params: Any) -> Any:
        result = super().call(method, *params)
        if method == self.lose:
            self.lose = None
            raise TransientError(f"answer to {method} lost")
        return result


def _losing_ledger(books: TrytonBooks, method: str) -> TrytonLedger:
    def connect() -> TrytonClient:
        client = LosingClient(books.site.server.url, books.database, "admin", "admin")
        client.lose = method
        return client
    return books.own(TrytonLedger("tryton", connect, ENTITIES))


def _keys(books: TrytonBooks) -> Counter[str]:
    return Counter(str(m["description"]).split(":")[1] for m in books.moves()
                   if m["state"] == "posted")


@pytest.mark.parametrize("lost", ["model.account.move.create", "model.account.move.post"])
def test_a_retry_after_a_lost_answer_posts_once(tryton_books: TrytonBooks, lost: str) -> None:
    ledger = _losing_ledger(tryton_books, lost)
    with pytest.raises(TransientError):
        ledger.post_invoice(invoice("inv_1", ["100.00"]), ctx("k1"))
    retried = ledger.post_invoice(invoice("inv_1", ["100.00"]), ctx("k1"))
    again = ledger.post_invoice(invoice("inv_1", ["100.00"]), ctx("k1"))
    assert again.external_id == retried.external_id
    assert _keys(tryton_books) == Counter({"k1": 1})
    assert len(tryton_books.moves()) == 1  # no draft left behind either
    assert [str(r.open_amount) for r in ledger.receivables("le_us", AS_OF)] == ["100.00 USD"]


def test_tryton_refuses_an_unbalanced_move_as_a_mapping_error(
        tryton_books: TrytonBooks) -> None:
    ledger = tryton_books.ledger()
    ledger.post_invoice(invoice("inv_1", ["100.00"]), ctx("k1"))  # loads the company
    client = ledger.client
    company = ledger._company("le_us")
    period = company.period(client, date(2026, 3, 5))
    assert period is not None
    (move,) = client.model("account.move", "create", [{
        "company": company.id, "period": period.id, "date": date(2026, 3, 5),
        "journal": company.journal(client, "MISC"), "lines": [("create", [
            {"account": company.account(client, "2.2.2").id, "debit": Decimal("10.00"),
             "credit": Decimal(0)},
            {"account": company.account(client, "4.2.2").id, "debit": Decimal(0),
             "credit": Decimal("9.99")}])]}], context=company.context)
    with pytest.raises(PermanentError) as caught:
        client.model("account.move", "post", [move], context=company.context)
    assert caught.value.exception_class is ExceptionClass.MAPPING_ERROR
    assert "you must balance all its lines debits and credits" in str(caught.value)


def test_a_date_without_a_period_is_a_closed_period(tryton_books: TrytonBooks) -> None:
    ledger = tryton_books.ledger()
    with pytest.raises(PermanentError) as caught:
        ledger.post_invoice(invoice("inv_1", ["100.00"], on=date(2031, 1, 5)), ctx("k1"))
    assert caught.value.exception_class is ExceptionClass.CLOSED_PERIOD


def _entry(entry_id: str, account: str) -> JournalEntry:
    amount = Money.of("5.00", "USD")
    return JournalEntry(entry_id, "le_us", date(2026, 1, 31), "Revenue", (
        JournalLine("2.2.2", Side.DEBIT, amount), JournalLine(account, Side.CREDIT, amount)))


def test_a_batch_posts_each_document_once_and_isolates_a_refusal(
        tryton_books: TrytonBooks) -> None:
    ledger = tryton_books.ledger()
    postings = [Posting(InvoiceIssued(invoice(f"inv_{n}", ["50.00"])), ctx(f"i{n}"))
                for n in range(4)]
    postings.append(Posting(PaymentApplied(payment("pay_1", "50.00", {"inv_0": "50.00"})),
                            ctx("p1")))  # settles an invoice of the same batch
    postings.append(Posting(RevenueJournalRecorded(_entry("je_1", "4.2.2")), ctx("j1")))
    first = ledger.post_batch(postings)
    assert all(isinstance(o, Receipt) for o in first)
    again = ledger.post_batch(postings)
    assert [o.external_id for o in again if isinstance(o, Receipt)] == \
        [o.external_id for o in first if isinstance(o, Receipt)]
    assert {r.document_id for r in ledger.receivables("le_us", AS_OF)} == \
        {"inv_1", "inv_2", "inv_3"}
    # Tryton refuses the whole post of a batch when one line is on a view account.
    mixed = [Posting(InvoiceIssued(invoice("inv_9", ["10.00"])), ctx("i9")),
             Posting(RevenueJournalRecorded(_entry("je_2", "4.2.0")), ctx("j2"))]
    outcome = ledger.post_batch(mixed)
    assert isinstance(outcome[0], Receipt)
    assert isinstance(outcome[1], PermanentError)
    assert outcome[1].exception_class is ExceptionClass.MASTER_DATA_MISMATCH
    assert _keys(tryton_books) == Counter({k: 1 for k in
                                           ("i0", "i1", "i2", "i3", "p1", "j1", "i9")})


def _stream(n: int) -> list[Posting]:
    """Invoices, and every third document a payment of the invoice two before it."""
    postings = []
    for i in range(n):
        if i % 3 == 2:
            paid = payment(f"pay_{i}", "30.00", {f"inv_{i - 2}": "30.00"},
                           customer=f"cus_{(i - 2) % 4}")
            postings.append(Posting(PaymentApplied(paid), ctx(f"k{i}")))
        else:
            billed = invoice(f"inv_{i}", ["30.00"], customer=f"cus_{i % 4}")
            postings.append(Posting(InvoiceIssued(billed), ctx(f"k{i}")))
    return postings


def _deliver(ledger: TrytonLedger, postings: list[Posting], deadline: float) -> int:
    """As the delivery worker does: retry what is transient until it lands; how many
    transient failures there were."""
    failures = 0
    for start in range(0, len(postings), 5):
        pending = postings[start:start + 5]
        while pending:
            assert time.monotonic() < deadline, "postings did not land after the restart"
            outcomes: list[Receipt | FinsyncError]
            if start < len(postings) // 2:  # one by one, then in batches
                outcomes = []
                for p in pending:
                    try:
                        outcomes.append(ledger._post_one(p))
                    except FinsyncError as exc:
                        outcomes.append(exc)
            else:
                outcomes = list(ledger.post_batch(pending))
            for outcome in outcomes:
                assert not isinstance(outcome, PermanentError), outcome
            pending = [p for p, o in zip(pending, outcomes, strict=True)
                       if isinstance(o, TransientError)]
            failures += len(pending)
            if pending:
                time.sleep(0.2)
    return failures


@pytest.mark.slow
def test_killing_trytond_mid_stream_loses_and_duplicates_nothing(
        tryton_books: TrytonBooks) -> None:
    site = tryton_books.site
    server = TrytonServer(site.server.home, site.postgres, site.server.workdir)
    server.start((tryton_books.database,))
    kills = []

    def killer() -> None:
        for _ in range(2):
            time.sleep(1.5)
            server.kill()
            kills.append(time.monotonic())
            time.sleep(0.5)
            server.start((tryton_books.database,))

    ledger = tryton_books.ledger(url=server.url)
    ledger.client.timeout_s = 10
    postings = _stream(51)
    thread = threading.Thread(target=killer)
    thread.start()
    try:
        failures = _deliver(ledger, postings, time.monotonic() + 120)
    finally:
        thread.join()
        server.stop()
    assert len(kills) == 2 and failures > 0
    assert _keys(tryton_books) == Counter({p.ctx.delivery_key: 1 for p in postings})
    reader = tryton_books.ledger()
    open_ids = {r.document_id for r in reader.receivables("le_us", AS_OF)}
    paid = {a.invoice_id for p in postings if isinstance(p.event, PaymentApplied)
            for a in p.event.payment.applications}
    invoiced = {p.event.invoice.id for p in postings if isinstance(p.event, InvoiceIssued)}
    assert open_ids == invoiced - paid
    assert sum((b.balance.amount for b in reader.trial_balance("le_us", AS_OF)),
               Decimal(0)) == 0


def test_bootstrap_again_changes_nothing_and_adds_a_second_company(
        tryton_books: TrytonBooks, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from finsync.cli.main import app

    monkeypatch.setenv("FINSYNC_TRYTON_PASSWORD", "admin")
    base = ["tryton", "bootstrap", "--url", tryton_books.site.server.url,
            "--database", tryton_books.database, "--json"]
    again = CliRunner().invoke(app, [*base, "--company", COMPANY])
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["changed"] is False
    with tryton_books.client() as client:
        (report,) = bootstrap(client, [BookSpec("Acme EU", "EUR", (2026,))])
        assert "company Acme EU" in report.created
        (report,) = bootstrap(client, [BookSpec("Acme EU", "EUR", (2026,))])
        assert report.created == []
