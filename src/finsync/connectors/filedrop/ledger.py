"""A ledger port that writes each posting document to a JSON-lines file, as many ERPs
import them (a nightly file drop). The file is also its own idempotency index.

Rules:
- One line per idempotency key, ever: the key is looked up under an exclusive file lock
  before the line is appended and fsynced; a repeat returns the first receipt.
- A torn last line (a crash mid-write) is cut off on the next open; it was never
  acknowledged, so the hub sends it again.
- External ids derive from the key, so a replay gets the same id.
- A file drop has no accounting periods: it accepts any posting date and reports every
  period as open; period control stays with the ERP that imports the file.
- The line's `document` is the document in `fingerprint`'s frozen shape (money as
  `{amount, currency}`): it is the import format of the ERPs that read the file, and it
  does not change with the canonical wire format. `kind` is the event's aggregate type.
- Each write (one lock, one fsync) goes to the call log (`connectors.calls`) as an `append`
  to the file, for the deliveries it carries, with how many lines it wrote and a redacted
  excerpt of them.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any, BinaryIO

from finsync.connectors.calls import NO_RECORDER, CallRecorder, Channel, Subject, recorded
from finsync.connectors.ports import (
    LEDGER_EVENTS,
    AccountBalance,
    Application,
    DeliveryContext,
    LedgerEvent,
    Posting,
    Receipt,
    Receivable,
    Reference,
)
from finsync.domain.dispute import DisputeClosure, DisputeFunds
from finsync.domain.errors import ExceptionClass, FinsyncError, PermanentError, TransientError
from finsync.domain.events import (
    CreditMemoIssued,
    DisputeClosed,
    DisputeFundsReinstated,
    DisputeFundsWithdrawn,
    InvoiceIssued,
    JournalEntrySummarised,
    PaymentApplied,
    RefundIssued,
)
from finsync.domain.fingerprint import plain
from finsync.domain.invoice import CreditMemo, Invoice
from finsync.domain.journal import JournalEntry, PeriodStatus
from finsync.domain.payment import Payment, Refund


class FileDropLedger:
    max_batch = 500

    def __init__(self, system: str, directory: Path, *,
                 recorder: CallRecorder = NO_RECORDER) -> None:
        self.system, self._recorder = system, recorder
        self.path = Path(directory) / f"{system}.jsonl"
        self._index: dict[str, dict[str, Any]] = {}
        self._order: list[str] = []
        self._offset = 0

    @contextmanager
    def _locked(self) -> Iterator[BinaryIO]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.path, "a+b")  # noqa: SIM115 - closed below, after unlocking
        except OSError as exc:
            raise TransientError(f"cannot open {self.path}: {exc}") from exc
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield handle
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    def _catch_up(self, handle: BinaryIO) -> None:
        """Index the lines appended since we last looked (by us or another process)."""
        handle.seek(self._offset)
        data = handle.read()
        complete = data[: data.rfind(b"\n") + 1]
        if len(complete) != len(data):
            handle.truncate(self._offset + len(complete))  # a torn, never-acknowledged write
        for raw in complete.splitlines():
            line = json.loads(raw)
            self._index[line["key"]] = line
            self._order.append(line["key"])
        self._offset += len(complete)

    def _receipt(self, line: dict[str, Any]) -> Receipt:
        refs = tuple(Reference(*r) for r in line["references"])
        return Receipt(line["external_id"], refs)

    def _write(self, event: LedgerEvent, ctx: DeliveryContext) -> Receipt:
        outcome = self.post_batch([Posting(event, ctx)])[0]
        if isinstance(outcome, Receipt):
            return outcome
        raise outcome

    def post_batch(self, postings: Sequence[Posting]) -> Sequence[Receipt | FinsyncError]:
        """Lines for every posting under one lock and one fsync; a key already used for
        another document is refused alone."""
        outcomes: list[Receipt | FinsyncError] = []
        subjects = [Subject(p.ctx.correlation_id, p.ctx.delivery_key) for p in postings]
        with recorded(self._recorder, self.system, Channel.FILE, "append", str(self.path),
                      subjects) as exchange, self._locked() as handle:
            self._catch_up(handle)
            fresh: dict[str, dict[str, Any]] = {}
            for posting in postings:
                outcomes.append(self._line(posting, fresh))
            data = b"".join(json.dumps(line, sort_keys=True).encode() + b"\n"
                            for line in fresh.values())
            exchange.request(list(fresh.values()), len(data))
            if fresh:
                handle.seek(0, os.SEEK_END)
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
                self._catch_up(handle)
            exchange.response({"written": len(fresh), "postings": len(postings)})
        return outcomes

    def _line(self, posting: Posting,
              fresh: dict[str, dict[str, Any]]) -> Receipt | FinsyncError:
        event, ctx = posting.event, posting.ctx
        if not isinstance(event, LEDGER_EVENTS):
            return PermanentError(f"a file drop ledger takes no {event.name} events",
                                  exception_class=ExceptionClass.MAPPING_ERROR)
        key, kind, body = ctx.delivery_key, event.aggregate_type, plain(event.document)
        if (known := self._index.get(key) or fresh.get(key)) is not None:
            if known["document"] != body:
                return PermanentError(f"key {key} was already used for another document",
                                      exception_class=ExceptionClass.DUPLICATE_EVENT)
            return self._receipt(known)
        external_id = f"{kind}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
        fresh[key] = line = {
            "key": key, "kind": kind, "external_id": external_id,
            "correlation_id": ctx.correlation_id, "event_id": ctx.event_id,
            "references": [[event.document.id, kind, external_id]], "document": body}
        return self._receipt(line)

    def post_invoice(self, invoice: Invoice, ctx: DeliveryContext) -> Receipt:
        return self._write(InvoiceIssued(invoice), ctx)

    def post_credit_memo(self, memo: CreditMemo, ctx: DeliveryContext) -> Receipt:
        return self._write(CreditMemoIssued(memo), ctx)

    def post_payment(self, payment: Payment, ctx: DeliveryContext) -> Receipt:
        return self._write(PaymentApplied(payment), ctx)

    def post_refund(self, refund: Refund, ctx: DeliveryContext) -> Receipt:
        return self._write(RefundIssued(refund), ctx)

    def post_dispute_funds(self, funds: DisputeFunds, ctx: DeliveryContext) -> Receipt:
        event = DisputeFundsWithdrawn(funds) if funds.withdrawn else DisputeFundsReinstated(funds)
        return self._write(event, ctx)

    def post_dispute_closure(self, closure: DisputeClosure, ctx: DeliveryContext) -> Receipt:
        # Written even with nothing unrecovered: the ERP that imports the file decides.
        return self._write(DisputeClosed(closure), ctx)

    def post_journal_entry(self, entry: JournalEntry, ctx: DeliveryContext) -> Receipt:
        # Every journal event writes the same line (kind `journal_entry`).
        return self._write(JournalEntrySummarised(entry), ctx)

    def find_receipt(self, key: str) -> Receipt | None:
        with self._locked() as handle:
            self._catch_up(handle)
        known = self._index.get(key)
        return None if known is None else self._receipt(known)

    def period_status(self, legal_entity: str, on: date) -> PeriodStatus:
        return PeriodStatus.OPEN

    def close_period(self, legal_entity: str, period: str, actor: str) -> None:
        raise self._no_books()

    def resolve_account(self, code: str) -> str:
        return code

    def applications(self, legal_entity: str, as_of: date) -> Sequence[Application]:
        raise self._no_books()

    def trial_balance(self, legal_entity: str, as_of: date) -> Sequence[AccountBalance]:
        raise self._no_books()

    def receivables(self, legal_entity: str, as_of: date) -> Sequence[Receivable]:
        raise self._no_books()

    def _no_books(self) -> PermanentError:
        return PermanentError("a file drop keeps no balances: reconcile against the ERP that "
                              "imports it", exception_class=ExceptionClass.TARGET_UNAVAILABLE)

    def documents(self) -> list[dict[str, Any]]:
        """Every line written, in order (for reports and tests)."""
        if not self.path.exists():
            return []
        with self._locked() as handle:
            self._catch_up(handle)
        return [self._index[key] for key in self._order]
