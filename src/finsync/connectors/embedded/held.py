"""The embedded billing platform's invoices held for tax, behind `HeldInvoicePort`.

Rules:
- `retry_held` executes billing's `RetryHeldInvoices` (one draft, or every held one) and
  says what its events did: each `invoice.released` an invoice issued, each `invoice.held`
  a draft held again. A draft billing holds again for the same cause emits nothing.
- A billing rule that refuses (an unknown draft) is a `PermanentError` carrying the rule's
  code and exception class; the billing database failing is a `TransientError`.
"""

from __future__ import annotations

from finsync.connectors.ports import HeldRetry
from finsync.domain.errors import PermanentError, TransientError
from finsync.domain.events import InvoiceHeld, InvoiceReleased
from finsync.systems.billing.errors import BillingError, BillingStorageError
from finsync.systems.billing.held import RetryHeldInvoices
from finsync.systems.billing.service import BillingService


class HeldRetryRefusedError(PermanentError):
    """Billing refused to retry a held draft; `code` is the refusing rule's."""

    def __init__(self, error: BillingError) -> None:
        super().__init__(str(error), exception_class=error.exception_class)
        self.code = error.code


class EmbeddedHeldInvoices:
    def __init__(self, system: str, service: BillingService) -> None:
        self.system, self._service = system, service

    def retry_held(self, draft_id: str | None) -> HeldRetry:
        try:
            applied = self._service.execute(RetryHeldInvoices(draft_id))
        except BillingError as exc:
            raise HeldRetryRefusedError(exc) from exc
        except BillingStorageError as exc:
            raise TransientError(f"billing could not retry held drafts: {exc}") from exc
        issued: list[tuple[str, str]] = []
        held: list[str] = []
        for emitted in applied.emitted:
            event = emitted.event
            if isinstance(event, InvoiceReleased) and event.held_invoice.invoice_id:
                issued.append((event.held_invoice.id, event.held_invoice.invoice_id))
            elif isinstance(event, InvoiceHeld):
                held.append(event.held_invoice.id)
        return HeldRetry(tuple(issued), tuple(held))
