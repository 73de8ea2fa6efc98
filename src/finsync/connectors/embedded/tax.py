"""The embedded tax engine behind the tax port.

Rules:
- `quote` answers the engine's result, checked by `domain.tax.check_result`; it raises
  the domain's errors: `TaxRefusedError` (the engine's refusals, with their codes) or
  `TaxUnavailableError` (its database cannot answer now).
- `commit_invoice` / `commit_credit_memo` record the document's own jurisdiction lines
  (a `void` memo voids its invoice). They answer a `Receipt` (external id `tax:<document>`,
  detail `status` and `replayed`), kept under the delivery key for `find_receipt`.
- Their failures are what the hub acts on: the engine's database unreachable, or a void
  that arrived before its invoice, is a `TransientError` (the latter a `sequencing_error`);
  a refusal (another body under a committed id, a line without jurisdiction lines) is a
  `TaxCommitRefusedError`, a `PermanentError` of class `tax_failure` with the rule's code.
- Each call goes to the call log as a `port` call, like a remote engine's requests would.
- `answered`: the deliveries whose keys the engine kept already for their very documents,
  each with the receipt its commit would answer again, in one read
  (`connectors.ports.AnsweringPort`); another document under a kept key is left to its
  commit, which refuses it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

from sqlalchemy.exc import OperationalError

from finsync.connectors.calls import NO_RECORDER, CallRecorder, Channel, Subject, recorded
from finsync.connectors.ports import DeliveryContext, Receipt, Reference, Sent
from finsync.domain.errors import DomainError, ExceptionClass, PermanentError, TransientError
from finsync.domain.invoice import CreditMemo, Invoice
from finsync.domain.tax import TaxRequest, TaxResult, TaxUnavailableError, check_result
from finsync.systems.tax.errors import UncommittedInvoiceError
from finsync.systems.tax.service import Committed, TaxService


class TaxCommitRefusedError(PermanentError):
    """The tax engine refused to commit a document; `code` is the refusing rule's."""

    def __init__(self, error: DomainError) -> None:
        super().__init__(f"{error.code}: {error}", exception_class=ExceptionClass.TAX_FAILURE)
        self.code = error.code


@contextmanager
def _committing() -> Iterator[None]:
    try:
        yield
    except UncommittedInvoiceError as exc:
        raise TransientError(str(exc), exception_class=ExceptionClass.SEQUENCING_ERROR) \
            from exc
    except OperationalError as exc:
        raise TransientError(f"tax engine database unavailable: {exc.orig}") from exc
    except DomainError as exc:
        raise TaxCommitRefusedError(exc) from exc


def receipt_of(answer: Committed) -> Receipt:
    document = answer.document_id
    return Receipt(f"tax:{document}", (Reference(document, "tax_transaction", f"tax:{document}"),),
                   {"status": answer.status, "replayed": str(answer.replayed).lower()})


class EmbeddedTax:
    def __init__(self, system: str, service: TaxService, *,
                 recorder: CallRecorder = NO_RECORDER) -> None:
        self.system, self._service, self._recorder = system, service, recorder

    def quote(self, request: TaxRequest) -> TaxResult:
        try:
            result = self._service.quote(request)
        except OperationalError as exc:
            raise TaxUnavailableError(f"tax engine database unavailable: {exc.orig}") from exc
        return check_result(request, result)

    def commit_invoice(self, invoice: Invoice, ctx: DeliveryContext) -> Receipt:
        return self._commit("commit_invoice", invoice.id, ctx,
                            lambda: self._service.commit(invoice, ctx.delivery_key))

    def commit_credit_memo(self, memo: CreditMemo, ctx: DeliveryContext) -> Receipt:
        return self._commit("commit_credit_memo", memo.id, ctx,
                            lambda: self._service.commit(memo, ctx.delivery_key))

    def find_receipt(self, key: str) -> Receipt | None:
        with _committing():
            answer = self._service.find(key)
        return None if answer is None else receipt_of(answer)

    def answered(self, sent: Sequence[Sent]) -> Mapping[str, Receipt]:
        """The documents committed already under these deliveries' keys, in one read: what
        committing each again would answer."""
        documents = {s.ctx.delivery_key: s.document for s in sent
                     if isinstance(s.document, Invoice | CreditMemo)}
        asked = {s.ctx.delivery_key: s.ctx for s in sent if s.ctx.delivery_key in documents}
        with _committing():
            found = self._service.find_many(documents)
        if not found:
            return {}
        subjects = tuple(Subject(asked[key].correlation_id, key) for key in found)
        with recorded(self._recorder, self.system, Channel.PORT, "answered", "TaxPort",
                      subjects) as exchange:
            exchange.request({"keys": len(asked)})
            exchange.response({"answered": len(found)})
        return {key: receipt_of(answer) for key, answer in found.items()}

    def _commit(self, method: str, document_id: str, ctx: DeliveryContext,
                change: Callable[[], Committed]) -> Receipt:
        with recorded(self._recorder, self.system, Channel.PORT, method, "TaxPort",
                      (Subject(ctx.correlation_id, ctx.delivery_key),)) as exchange:
            exchange.request({"document": document_id, "key": ctx.delivery_key})
            with _committing():
                answer = change()
            exchange.response({"external_id": f"tax:{answer.document_id}",
                               "status": answer.status, "replayed": answer.replayed})
        return receipt_of(answer)
