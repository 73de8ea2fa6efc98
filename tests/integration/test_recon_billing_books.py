"""Billing's set-based books (`EmbeddedBillingRecords.books()`) say what billing's own core
says of its in-memory state, document by document: open amounts (`state.amount_due`),
customer balances, payments, credit memos with their contract, and each contract's value
(`value.contract_value_in`), on both databases; every stream in code-point order."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from sqlalchemy import Engine

from finsync.connectors.embedded.billing_records import EmbeddedBillingRecords
from finsync.domain.catalog import BillingFrequency
from finsync.domain.money import Money
from finsync.domain.party import CustomerAccount
from finsync.systems.billing.cancellation import CancelMode, CancelSubscription
from finsync.systems.billing.credit import CreditReason, IssueCreditMemo
from finsync.systems.billing.handler import RegisterCustomer, RunClock
from finsync.systems.billing.payment import PayInvoice, RefundPayment
from finsync.systems.billing.state import amount_due
from finsync.systems.billing.value import contract_value_in
from tests.unit.billing.servicekit import MAY_16, REGISTER, UPGRADE, create, service, usd

AS_OF = date(2026, 6, 30)


def _company(engine: Engine) -> EmbeddedBillingRecords:
    """Acme (annual, upgraded mid-year, paid, credited, refunded), Beta (monthly, one
    invoice paid in part, cancelled at term end), Gamma (monthly, cancelled now)."""
    billing = service(engine)
    billing.execute(REGISTER)
    billing.execute(create())
    billing.execute(RunClock(MAY_16))
    billing.execute(UPGRADE)
    for n, (key, name) in enumerate((("cus_beta", "Beta"), ("cus_gamma", "Gamma"))):
        billing.execute(RegisterCustomer(CustomerAccount(key, name, "le_us", "USD", "US")))
        monthly = create()
        contract = replace(monthly.contract, id=f"con_{name.lower()}", customer_id=key,
                           billing_frequency=BillingFrequency.MONTHLY)
        billing.execute(replace(monthly, contract=contract, correlation_id=f"q_{n}"))
    billing.execute(RunClock(date(2026, 3, 5)))
    state = billing.state()
    first = state.invoices[0].invoice
    billing.execute(PayInvoice("pay_acme", first.id, first.total, date(2026, 2, 1)))
    beta = next(r.invoice for r in state.invoices if r.invoice.customer_id == "cus_beta")
    billing.execute(PayInvoice("pay_beta", beta.id, usd("100.00"), date(2026, 2, 3)))
    billing.execute(IssueCreditMemo(first.id, CreditReason.SLA_CREDIT, date(2026, 3, 1),
                                    usd("500.00"), "sla_1"))
    billing.execute(RefundPayment("ref_acme", "pay_acme", usd("250.00"), date(2026, 3, 2)))
    billing.execute(CancelSubscription("cx_beta", "con_beta", date(2026, 3, 3),
                                       CancelMode.AT_TERM_END))
    billing.execute(CancelSubscription("cx_gamma", "con_gamma", date(2026, 3, 4),
                                       CancelMode.IMMEDIATE_WITH_REFUND))
    return EmbeddedBillingRecords("billing", billing)


def test_books_agree_with_the_billing_core(engine: Engine) -> None:
    records = _company(engine)
    state = records._service.state()
    with records.books() as books:
        invoices = [(d.document_id, d.amount_minor)
                    for d in books.open_invoices("le_us", AS_OF)]
        customers = [(c.customer_id, c.amount_minor)
                     for c in books.customer_balances("le_us", "USD", AS_OF)]
        payments = [(d.document_id, d.amount_minor)
                    for d in books.payments_applied("le_us", AS_OF)]
        memos = [(m.contract_id, m.document.document_id, m.document.amount_minor)
                 for m in books.credit_memos("le_us", AS_OF)]
        values = [(v.contract_id, v.value) for v in books.contract_values("le_us")]
    assert invoices == sorted((r.invoice.id, max(amount_due(state, r.invoice.id).to_minor(), 0))
                              for r in state.invoices)
    balances: dict[str, int] = {}
    for r in state.invoices:
        balances[r.invoice.customer_id] = balances.get(r.invoice.customer_id, 0) + \
            r.invoice.total.to_minor()
    for m in state.credit_memos:
        balances[m.customer_id] -= m.total.to_minor()
    for p in state.payments:
        balances[p.customer_id] -= p.amount.to_minor()
    for f in state.refunds:
        balances[f.customer_id] += f.amount.to_minor()
    assert customers == sorted(balances.items())
    assert payments == sorted((p.id, p.amount.to_minor()) for p in state.payments)
    contract_of = {r.invoice.id: r.invoice.contract_id for r in state.invoices}
    assert memos == sorted((contract_of[m.invoice_id], m.id, m.subtotal.to_minor())
                           for m in state.credit_memos)
    assert values == sorted((s.id, contract_value_in(state, s.id))
                            for s in state.subscriptions)
    # Acme: 60,000.00 a year + 300 seats and analytics from 16 May, less the 500.00 credit
    assert dict(values)["con_acme_2026"].amount > Money.of("60000.00", "USD").amount


def test_books_before_the_first_document_are_empty(engine: Engine) -> None:
    records = _company(engine)
    with records.books() as books:
        assert list(books.open_invoices("le_us", date(2025, 12, 31))) == []
        assert list(books.payments_applied("le_us", date(2025, 12, 31))) == []
        assert list(books.open_invoices("le_eu", AS_OF)) == []
