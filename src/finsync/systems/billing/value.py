"""What a contract is worth to billing, for reconciliation with the revenue engine.

Rules:
- Value = the net consideration billed under the contract so far (invoice lines before
  tax, credit memos on its invoices deducted) + the fixed fees its current term will still
  bill. Usage is counted as it is billed: future usage is unknown.
- The fixed fees still to come are what billing's own clock would invoice to the term end,
  computed on a copy of the state with renewal switched off (the state is immutable, so
  nothing is issued); billing's proration and rounding apply, not a recomputation.
"""

from __future__ import annotations

from dataclasses import replace

from finsync.domain.catalog import PriceModel
from finsync.domain.invoice import DocumentLine, Invoice
from finsync.domain.money import Money
from finsync.systems.billing import clock
from finsync.systems.billing.state import BillingState, SubscriptionStatus


def contract_value(state: BillingState, contract_id: str) -> Money:
    billed = _billed_net(state, contract_id)
    if state.subscription(contract_id).status is SubscriptionStatus.CANCELLED:
        return billed
    return billed + _still_to_bill(state, contract_id)


def _billed_net(state: BillingState, contract_id: str) -> Money:
    currency = state.subscription(contract_id).contract.currency
    invoices = [r.invoice for r in state.invoices if r.invoice.contract_id == contract_id]
    ids = {invoice.id for invoice in invoices}
    billed = sum((invoice.subtotal for invoice in invoices), Money.zero(currency))
    credited = sum((memo.subtotal for memo in state.credit_memos if memo.invoice_id in ids),
                   Money.zero(currency))
    return billed - credited


def _still_to_bill(state: BillingState, contract_id: str) -> Money:
    sub = state.subscription(contract_id)
    frozen = replace(state, subscriptions=tuple(
        replace(s, auto_renew=False) if s.id == contract_id else s
        for s in state.subscriptions))
    issued = {r.invoice.id for r in state.invoices}
    future = clock.run(frozen, sub.contract.end_date).state
    fixed = [line.amount for record in future.invoices
             if record.invoice.id not in issued and record.invoice.contract_id == contract_id
             for line in _fixed_lines(state, record.invoice)]
    return sum(fixed, Money.zero(sub.contract.currency))


def _fixed_lines(state: BillingState, invoice: Invoice) -> list[DocumentLine]:
    usage = {plan.price.product_id for plan in state.config.catalog.plans
             if plan.price.model is PriceModel.USAGE}
    return [line for line in invoice.lines if line.product_id not in usage]
