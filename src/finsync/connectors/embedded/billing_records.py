"""The embedded billing platform's books as reconciliation reads them (BillingRecordsPort)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from finsync.connectors.ports import BilledInvoice, ContractValue
from finsync.domain.invoice import CreditMemo
from finsync.domain.money import Money
from finsync.domain.payment import Payment, Refund
from finsync.systems.billing.service import BillingService
from finsync.systems.billing.state import BillingState
from finsync.systems.billing.value import contract_value


class EmbeddedBillingRecords:
    def __init__(self, system: str, service: BillingService) -> None:
        self.system, self._service = system, service

    def invoices(self, legal_entity: str, as_of: date) -> Sequence[BilledInvoice]:
        state = self._service.state()
        return [BilledInvoice(r.invoice, _open(state, r.invoice.id, r.invoice.total, as_of))
                for r in state.invoices
                if r.invoice.legal_entity == legal_entity and r.invoice.issue_date <= as_of]

    def credit_memos(self, legal_entity: str, as_of: date) -> Sequence[CreditMemo]:
        return [m for m in self._service.state().credit_memos
                if m.legal_entity == legal_entity and m.issue_date <= as_of]

    def payments(self, legal_entity: str, as_of: date) -> Sequence[Payment]:
        return [p for p in self._service.state().payments
                if p.legal_entity == legal_entity and p.received_on <= as_of]

    def refunds(self, legal_entity: str, as_of: date) -> Sequence[Refund]:
        return [r for r in self._service.state().refunds
                if r.legal_entity == legal_entity and r.issued_on <= as_of]

    def contract_values(self, legal_entity: str) -> Sequence[ContractValue]:
        state = self._service.state()
        return [ContractValue(s.id, s.contract.customer_id, contract_value(state, s.id))
                for s in state.subscriptions if s.contract.legal_entity == legal_entity]


def _open(state: BillingState, invoice_id: str, total: Money, as_of: date) -> Money:
    """What the customer still owes on the invoice on `as_of`, as billing counts it: total
    - credits - payments applied to it + refunds of those payments; never below zero (a
    credit beyond what is due is the customer's credit, not a negative invoice)."""
    zero = Money.zero(total.currency)
    credited = sum((m.total for m in state.credit_memos
                    if m.invoice_id == invoice_id and m.issue_date <= as_of), zero)
    paid = zero
    for payment in state.payments:
        applied = [a.amount for a in payment.applications if a.invoice_id == invoice_id]
        if applied and payment.received_on <= as_of:
            paid = paid + sum(applied, zero) - sum(
                (r.amount for r in state.refunds
                 if r.payment_id == payment.id and r.issued_on <= as_of), zero)
    due = total - credited - paid
    return due if due.amount > 0 else zero
