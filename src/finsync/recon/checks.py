"""The six reconciliation checks of DESIGN §6, as pure functions of a `Snapshot`.

Conventions:
- `expected` is the system of record's figure (billing for documents and payments, the
  revenue engine for revenue), `actual` the other system's; variance = actual - expected.
- Each document counts once per check: a customer line is context (both balances), and its
  variance is only what its documents' items do not already count.
- GL balances are debit-positive in the entity's functional currency; revenue and deferred
  revenue are compared as credits (sign flipped).
- A break is explained when an unresolved exception of another class names its object (its
  delivery failure, a mapping error…), never by its own `reconciliation_break`, or when the
  period it falls in is not closed yet (the revenue journal is posted at close); explained
  breaks still count in the variance, they only open no new exception.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date

from finsync.connectors.ports import (
    Application,
    BilledInvoice,
    ContractValue,
    Receivable,
    RevenuePosition,
)
from finsync.domain.clock import Period
from finsync.domain.invoice import CreditMemo
from finsync.domain.money import Money
from finsync.domain.payment import Payment, Refund
from finsync.recon.model import CheckResult, Item


@dataclass(frozen=True, slots=True)
class PeriodRevenue:
    name: str
    period: Period
    recognised: Money  # by the revenue engine
    gl_revenue: Money  # credit movement of the revenue account in the ERP
    closed: bool


@dataclass(frozen=True, slots=True)
class Snapshot:
    legal_entity: str
    currency: str
    as_of: date
    invoices: Sequence[BilledInvoice]
    credit_memos: Sequence[CreditMemo]
    payments: Sequence[Payment]
    refunds: Sequence[Refund]
    contract_values: Sequence[ContractValue]
    receivables: Sequence[Receivable]
    applications: Sequence[Application]
    opening: Sequence[RevenuePosition]
    closing: Sequence[RevenuePosition]
    periods: Sequence[PeriodRevenue]
    gl: Mapping[str, Money]
    accounts: Mapping[str, str]
    explained: Mapping[str, str]  # object ref -> the exception (not a break) that names it
    as_of_closed: bool

    def zero(self) -> Money:
        return Money.zero(self.currency)

    def gl_balance(self, role: str) -> Money:
        return self.gl.get(self.accounts[role], self.zero())


def _sum(values: Iterable[Money], zero: Money) -> Money:
    return sum(values, zero)


def _item(snap: Snapshot, ref: str, expected: Money, actual: Money, cause: str,
          customer: str | None = None, explained: str | None = None,
          counted_elsewhere: Money | None = None) -> Item:
    item = Item(ref, expected, actual, customer, counted_elsewhere=counted_elsewhere)
    if not item.is_break:
        return item
    return replace(item, cause=cause, explained_by=explained or snap.explained.get(ref))


def billing_vs_erp_ar(snap: Snapshot) -> CheckResult:
    """Per invoice: what billing says is still due vs the ERP's open item. Per customer, as
    context: billing's balance (invoices - credits - payments + refunds) vs the ERP's
    receivables; its variance is only what the invoices' items do not already count (cash or
    a credit that one side holds unapplied, a document booked to another customer)."""
    documents = _document_items(snap)
    on_documents: dict[str, Money] = {}
    for item in documents:
        if item.customer_id is not None:
            on_documents[item.customer_id] = on_documents.get(
                item.customer_id, snap.zero()) + item.variance
    customers = _customer_balances(snap)
    erp_by_customer: dict[str, Money] = {}
    for r in snap.receivables:
        if r.open_amount.currency == snap.currency:
            erp_by_customer[r.customer_id] = erp_by_customer.get(
                r.customer_id, snap.zero()) + r.open_amount
    lines = [_item(snap, f"customer:{customer}", customers.get(customer, snap.zero()),
                   erp_by_customer.get(customer, snap.zero()), "customer_balance_differs",
                   customer, counted_elsewhere=on_documents.get(customer, snap.zero()))
             for customer in sorted(set(customers) | set(erp_by_customer))]
    return CheckResult("billing_vs_erp_ar", snap.legal_entity, snap.currency,
                       (*documents, *lines))


def _document_items(snap: Snapshot) -> list[Item]:
    """One item per invoice: billing's open amount vs the ERP's open item, and one per open
    ERP debit billing does not know."""
    erp = {r.document_id: r.open_amount for r in snap.receivables}
    items = [_item(snap, f"invoice:{b.invoice.id}", b.open_amount,
                   erp.get(b.invoice.id, snap.zero()),
                   "not_in_erp" if b.invoice.id not in erp and not b.open_amount.is_zero
                   else "open_amount_differs", b.invoice.customer_id)
             for b in snap.invoices if b.invoice.currency == snap.currency]
    billed = {b.invoice.id for b in snap.invoices}
    items += [_item(snap, f"invoice:{r.document_id}", snap.zero(), r.open_amount,
                    "not_in_billing", r.customer_id)
              for r in snap.receivables if r.document_id not in billed
              and r.open_amount.amount > 0 and r.open_amount.currency == snap.currency]
    return items


def _customer_balances(snap: Snapshot) -> dict[str, Money]:
    balances: dict[str, Money] = {}

    def add(customer: str, amount: Money) -> None:
        if amount.currency == snap.currency:
            balances[customer] = balances.get(customer, snap.zero()) + amount

    for b in snap.invoices:
        add(b.invoice.customer_id, b.invoice.total)
    for memo in snap.credit_memos:
        add(memo.customer_id, -memo.total)
    for payment in snap.payments:
        add(payment.customer_id, -payment.amount)
    for refund in snap.refunds:
        add(refund.customer_id, refund.amount)
    return balances


def contract_value_vs_transaction_price(snap: Snapshot) -> CheckResult:
    revenue = {p.subscription_contract_id: p.transaction_price for p in snap.closing}
    items = [_item(snap, f"subscription_contract:{c.contract_id}", c.value,
                   revenue.get(c.contract_id, Money.zero(c.value.currency)),
                   "not_in_revenue_engine" if c.contract_id not in revenue
                   else "transaction_price_differs", c.customer_id)
             for c in snap.contract_values]
    return _by_currency("contract_value_vs_transaction_price", snap, items)


def credit_memos_vs_deferred_adjustments(snap: Snapshot) -> CheckResult:
    taken = {memo_id: amount for p in snap.closing for memo_id, amount in p.credits}
    items = [_item(snap, f"credit_memo:{m.id}", m.subtotal,
                   taken.get(m.id, Money.zero(m.currency)),
                   "not_in_revenue_engine" if m.id not in taken else "adjustment_differs",
                   m.customer_id)
             for m in snap.credit_memos]
    return _by_currency("credit_memos_vs_deferred_adjustments", snap, items)


def payments_vs_ar_applications(snap: Snapshot) -> CheckResult:
    applied: dict[str, Money] = {}
    for a in snap.applications:
        applied[a.by] = applied.get(a.by, Money.zero(a.amount.currency)) + a.amount
    items = []
    for p in snap.payments:
        expected = _sum((a.amount for a in p.applications), Money.zero(p.amount.currency))
        items.append(_item(snap, f"payment:{p.id}", expected,
                           applied.get(p.id, Money.zero(p.amount.currency)),
                           "not_applied_in_erp" if p.id not in applied
                           else "application_differs", p.customer_id))
    return _by_currency("payments_vs_ar_applications", snap, items)


def recognised_vs_gl_revenue(snap: Snapshot) -> CheckResult:
    items = [_item(snap, f"period:{p.name}", p.recognised, p.gl_revenue,
                   "revenue_journal_missing_or_differs",
                   explained=None if p.closed else "period_not_closed")
             for p in snap.periods]
    return CheckResult("recognised_vs_gl_revenue", snap.legal_entity, snap.currency,
                       tuple(items), _foreign_note(snap))


def deferred_revenue_rollforward(snap: Snapshot) -> CheckResult:
    """Opening + billings - recognised ± adjustments = closing (the engine's identity), and
    closing = the GL balance, for deferred revenue and for contract assets."""
    def total(positions: Sequence[RevenuePosition],
              pick: Callable[[RevenuePosition], Money]) -> Money:
        return _sum((pick(p) for p in positions if p.currency == snap.currency), snap.zero())

    credits = _sum((amount for p in snap.closing if p.currency == snap.currency
                    for _, amount in p.credits), snap.zero()) - _sum(
        (amount for p in snap.opening if p.currency == snap.currency
         for _, amount in p.credits), snap.zero())
    opening = total(snap.opening, lambda p: p.deferred_revenue - p.contract_asset
                    - p.unbilled_receivable)
    billings = total(snap.closing, lambda p: p.billed) - total(snap.opening, lambda p: p.billed)
    recognised = total(snap.closing, lambda p: p.recognised) - total(
        snap.opening, lambda p: p.recognised)
    computed = opening + (billings + credits) - credits - recognised
    closing_deferred = total(snap.closing, lambda p: p.deferred_revenue)
    closing_asset = total(snap.closing, lambda p: p.contract_asset + p.unbilled_receivable)
    explained = None if snap.as_of_closed else "period_not_closed"
    items = [
        _item(snap, "rollforward:identity", closing_deferred - closing_asset, computed,
              "rollforward_does_not_foot"),
        _item(snap, "gl:deferred_revenue", closing_deferred, -snap.gl_balance("deferred_revenue"),
              "gl_deferred_differs", explained=explained),
        _item(snap, "gl:contract_asset", closing_asset, snap.gl_balance("contract_asset")
              + snap.gl_balance("unbilled_receivable"), "gl_contract_asset_differs",
              explained=explained),
    ]
    notes = (f"opening {opening.amount}, billings {(billings + credits).amount}, "
             f"adjustments {(-credits).amount}, recognised {recognised.amount}, "
             f"closing {computed.amount}", *_foreign_note(snap))
    return CheckResult("deferred_revenue_rollforward", snap.legal_entity, snap.currency,
                       tuple(items), notes)


def _foreign_note(snap: Snapshot) -> tuple[str, ...]:
    foreign = sorted({p.subscription_contract_id for p in snap.closing
                      if p.currency != snap.currency})
    if not foreign:
        return ()
    return (f"{len(foreign)} contract(s) not in {snap.currency} are left out of the GL "
            "comparison (the GL holds them converted)",)


def _by_currency(name: str, snap: Snapshot, items: list[Item]) -> CheckResult:
    """Items in the functional currency are compared; others are reported in notes."""
    kept = tuple(i for i in items if i.expected.currency == snap.currency)
    others = [i for i in items if i.expected.currency != snap.currency and i.is_break]
    notes = tuple(f"{i.ref}: {i.variance} ({i.cause})" for i in others)
    return CheckResult(name, snap.legal_entity, snap.currency, kept, notes)


CHECKS: tuple[Callable[[Snapshot], CheckResult], ...] = (
    billing_vs_erp_ar,
    contract_value_vs_transaction_price,
    credit_memos_vs_deferred_adjustments,
    payments_vs_ar_applications,
    recognised_vs_gl_revenue,
    deferred_revenue_rollforward,
)
