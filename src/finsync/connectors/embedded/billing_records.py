"""The embedded billing platform's books as reconciliation reads them (BillingRecordsPort)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date

from finsync.connectors.ports import BilledInvoice, ContractValue
from finsync.domain.invoice import CreditMemo
from finsync.domain.money import Money
from finsync.domain.payment import Payment, Refund
from finsync.systems.billing.service import BillingService
from finsync.systems.billing.state import BillingState, amount_due
from finsync.systems.billing.value import contract_value


class EmbeddedBillingRecords:
    def __init__(self, system: str, service: BillingService) -> None:
        self.system, self._service = system, service

    def invoices(self, legal_entity: str, as_of: date) -> Sequence[BilledInvoice]:
        state = _as_of(self._service.state(), as_of)
        return [BilledInvoice(r.invoice, _open(state, r.invoice.id))
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


def _as_of(state: BillingState, as_of: date) -> BillingState:
    """Billing's books as they stood at the end of `as_of` (later documents left out)."""
    return replace(state,
                   credit_memos=tuple(m for m in state.credit_memos if m.issue_date <= as_of),
                   payments=tuple(p for p in state.payments if p.received_on <= as_of),
                   refunds=tuple(r for r in state.refunds if r.issued_on <= as_of))


def _open(state: BillingState, invoice_id: str) -> Money:
    """What billing says is still due on the invoice; never below zero (a credit beyond what
    is due is the customer's credit, not a negative invoice)."""
    due = amount_due(state, invoice_id)
    return due if due.amount > 0 else Money.zero(due.currency)
