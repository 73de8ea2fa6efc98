"""What every invoice of a state was credited, paid and still owes, in one pass.

Rules:
- The arithmetic is `state.amount_due`'s: due = total - credit memos - (payments applied
  less refunds of those payments); a cash refund without a credit reopens the receivable.
- The documents are indexed once by invoice (memos, applications) and by payment (refunds),
  so the balances of N invoices cost O(documents), not O(N x documents) as N calls of
  `amount_due` would.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from finsync.domain.money import Money, total
from finsync.systems.billing.state import BillingState


@dataclass(frozen=True, slots=True)
class InvoiceBalance:
    credited: Money
    paid: Money
    due: Money


def balances(state: BillingState) -> dict[str, InvoiceBalance]:
    """Each invoice's balance, by invoice id."""
    memos: defaultdict[str, list[Money]] = defaultdict(list)
    for memo in state.credit_memos:
        memos[memo.invoice_id].append(memo.total)
    refunds: defaultdict[str, list[Money]] = defaultdict(list)
    for refund in state.refunds:
        refunds[refund.payment_id].append(refund.amount)
    paid: defaultdict[str, list[Money]] = defaultdict(list)
    for payment in state.payments:
        applied: defaultdict[str, list[Money]] = defaultdict(list)
        for application in payment.applications:
            applied[application.invoice_id].append(application.amount)
        back = total(refunds[payment.id], payment.amount.currency)
        for invoice_id, amounts in applied.items():
            paid[invoice_id].append(total(amounts, payment.amount.currency) - back)
    result = {}
    for record in state.invoices:
        invoice = record.invoice
        credited = total(memos[invoice.id], invoice.currency)
        settled = total(paid[invoice.id], invoice.currency)
        result[invoice.id] = InvoiceBalance(credited, settled,
                                            invoice.total - credited - settled)
    return result
