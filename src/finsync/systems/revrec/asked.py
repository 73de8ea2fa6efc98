"""What a change of the revenue service is asked, as its receipt keeps it: the caller's key,
the body whose hash the receipt holds, and the documents the change links to its revenue
contract (or needs linked before it can apply).

Rules:
- The body is the one the change itself hashes (`service.RevenueService._change`): the
  same builders serve both, so that an answer found in a set (`RevenueService.answered`)
  is the answer the change would give.
- An ask is answered from the store only when the change would answer it without writing:
  its key stored with this very body, and every document it names linked. Any other (a key
  not known yet, known for another body, a link missing) is left out, for the change itself
  to decide exactly as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, select

from finsync.domain.contract import ContractAmendment, SubscriptionContract
from finsync.domain.invoice import CreditMemo, Invoice
from finsync.systems.revrec import receipt
from finsync.systems.revrec import tables as t
from finsync.systems.revrec.event import CreditMemoApplied, InvoiceRecorded, RevenueEvent
from finsync.systems.revrec.modification import ModificationFacts
from finsync.systems.revrec.receipt import Applied
from finsync.systems.revrec.serial import encode


@dataclass(frozen=True, slots=True)
class Asked:
    key: str
    body: object  # hashed as `receipt.digest(serial.encode(body))`
    documents: tuple[str, ...] = ()  # linked by the change, or needed linked by it


def asked_book(contract: SubscriptionContract, key: str) -> Asked:
    return Asked(key, contract)


def asked_modify(amendment: ContractAmendment, key: str,
                 facts: ModificationFacts | None = None) -> Asked:
    return Asked(key, {"amendment": amendment, "facts": facts})


def asked_invoice(invoice: Invoice, key: str, event_id: str) -> Asked:
    """Both an invoice of a contract and a one-off link the invoice to its contract."""
    return Asked(key, InvoiceRecorded(event_id, invoice), (invoice.id,))


def asked_credit_memo(memo: CreditMemo, key: str, event_id: str) -> Asked:
    """A memo finds its contract through its invoice's link."""
    return Asked(key, CreditMemoApplied(event_id, memo, None), (memo.invoice_id,))


def asked_event(event: RevenueEvent, key: str) -> Asked:
    return Asked(key, event)


def answered(conn: Connection, asks: Sequence[Asked]) -> dict[str, Applied]:
    """The stored answers (marked replayed) of the asks made already, by key: two reads."""
    keys = {ask.key for ask in asks}
    documents = {d for ask in asks for d in ask.documents}
    r = t.receipts.c
    stored = {row.idempotency_key: row for row in conn.execute(
        select(r.idempotency_key, r.body_hash, r.answer).where(r.idempotency_key.in_(keys)))}
    linked: set[str] = set()
    if documents:
        linked = set(conn.execute(select(t.documents.c.document_id).where(
            t.documents.c.document_id.in_(documents))).scalars())
    found: dict[str, Applied] = {}
    for ask in asks:
        row = stored.get(ask.key)
        if row is None or not linked.issuperset(ask.documents):
            continue
        if row.body_hash == receipt.digest(encode(ask.body)):
            found[ask.key] = receipt.answer_of(row.answer, replayed=True)
    return found
