"""The reconciliation checks, each one pass over one entity's `Books`: the six of DESIGN §6
and tax on billing's documents vs tax payable in the ERP (`recon.tax`).

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
- Two systems' documents are paired by merging their ordered streams (`merge`): memory is
  a check's kept items (`Collector`) and per-customer sums of breaking documents, never
  the documents themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from finsync.connectors.ports import (
    ContractDocument,
    ContractPrice,
    ContractValue,
    DocumentAmount,
    PositionTotals,
)
from finsync.domain.money import Money
from finsync.recon.books import Books, PeriodRevenue, Snapshot
from finsync.recon.merge import merge
from finsync.recon.model import CheckResult, Collector, Item
from finsync.recon.tax import tax_vs_tax_payable

__all__ = ["CHECKS", "PeriodRevenue", "Snapshot"]


def _books(source: Books | Snapshot) -> Books:
    return source.books() if isinstance(source, Snapshot) else source


def _item(books: Books, ref: str, expected: Money, actual: Money, cause: str,
          customer: str | None = None, explained: str | None = None,
          counted_elsewhere: Money | None = None) -> Item:
    item = Item(ref, expected, actual, customer, counted_elsewhere=counted_elsewhere)
    if not item.is_break:
        return item
    return replace(item, cause=cause, explained_by=explained or books.explained.get(ref))


def _compare(out: Collector, books: Books, ref: str, expected_minor: int, actual_minor: int,
             currency: str, cause: str, customer: str | None) -> Item | None:
    """Compare two amounts in minor units; the item if the collector keeps it."""
    if not out.wants(ref, expected_minor != actual_minor):
        return None
    item = _item(books, ref, Money.from_minor(expected_minor, currency),
                 Money.from_minor(actual_minor, currency), cause, customer)
    out.keep(item)
    return item


def billing_vs_erp_ar(source: Books | Snapshot) -> CheckResult:
    """Per invoice: what billing says is still due vs the ERP's open item. Per customer, as
    context: billing's balance (invoices - credits - payments + refunds) vs the ERP's
    receivables; its variance is only what the invoices' items do not already count (cash or
    a credit that one side holds unapplied, a document booked to another customer)."""
    books = _books(source)
    out = Collector(books.watched)
    out.compared += books.documents_agreeing
    on_documents = _document_items(books, out)
    customers = merge(books.billing_customers(), books.erp_customers(),
                      lambda c: c.customer_id, lambda c: c.customer_id)
    for customer, billed, erp in customers:
        expected = billed.amount_minor if billed else 0
        actual = erp.amount_minor if erp else 0
        counted = on_documents.get(customer, 0)
        ref = f"customer:{customer}"
        if out.wants(ref, actual - expected != counted):
            out.keep(_item(books, ref, Money.from_minor(expected, books.currency),
                           Money.from_minor(actual, books.currency),
                           "customer_balance_differs", customer,
                           counted_elsewhere=Money.from_minor(counted, books.currency)))
    return CheckResult("billing_vs_erp_ar", books.legal_entity, books.currency,
                       tuple(out.items), compared=out.compared)


def _document_items(books: Books, out: Collector) -> dict[str, int]:
    """One item per invoice: billing's open amount vs the ERP's open item, and one per open
    ERP debit billing does not know. Returns each customer's sum of breaking variances."""
    on_documents: dict[str, int] = {}
    pairs = merge(books.open_invoices(), books.erp_open_items(),
                  lambda d: d.document_id, lambda d: d.document_id)
    currency = books.currency
    for document, billed, erp in pairs:
        if billed is not None:
            if billed.currency != currency:
                continue
            actual = erp.amount_minor if erp is not None else 0
            cause = ("not_in_erp" if erp is None and billed.amount_minor != 0
                     else "open_amount_differs")
            customer, expected = billed.customer_id, billed.amount_minor
        elif erp is not None and erp.amount_minor > 0 and erp.currency == currency:
            cause, customer, expected, actual = ("not_in_billing", erp.customer_id, 0,
                                                 erp.amount_minor)
        else:
            continue
        _compare(out, books, f"invoice:{document}", expected, actual, currency, cause,
                 customer)
        if actual != expected:
            on_documents[customer] = on_documents.get(customer, 0) + actual - expected
    return on_documents


def contract_value_vs_transaction_price(source: Books | Snapshot) -> CheckResult:
    return contract_checks(_books(source)).contract_values


def credit_memos_vs_deferred_adjustments(source: Books | Snapshot) -> CheckResult:
    return contract_checks(_books(source)).credit_memos


@dataclass(frozen=True, slots=True)
class ContractChecks:
    contract_values: CheckResult  # contract_value_vs_transaction_price
    credit_memos: CheckResult  # credit_memos_vs_deferred_adjustments


def contract_checks(books: Books) -> ContractChecks:
    """Both checks of the engine's contracts, from one pass over them (kept for the other)."""
    return books.contract_checks.get(lambda: _contract_pass(books))


def _contract_pass(books: Books) -> ContractChecks:
    """One merge of billing's contract values, the engine's prices and billing's credit
    memos grouped by contract: per contract, its value against its transaction price, and
    each of its memos against the credit the engine took for it."""
    values, value_notes = Collector(books.watched), _Foreign(books)
    memos, memo_notes = Collector(books.watched), _Foreign(books)
    priced = merge(books.contract_values(), books.closing(),
                   lambda c: c.contract_id, lambda p: p.subscription_contract_id)
    for contract, pair, group in merge(priced, _grouped(books.credit_memos()),
                                       lambda t: t[0], lambda g: g[0]):
        value, price = (pair[1], pair[2]) if pair is not None else (None, None)
        if value is not None:
            _compare_value(books, values, value_notes, contract, value, price)
        if group is not None:
            taken = dict(price.credits) if price is not None else {}
            for memo in group[1]:
                _compare_memo(books, memos, memo_notes, memo, taken)
    return ContractChecks(value_notes.result("contract_value_vs_transaction_price", values),
                          memo_notes.result("credit_memos_vs_deferred_adjustments", memos))


def _compare_value(books: Books, out: Collector, notes: _Foreign, contract: str,
                   value: ContractValue, price: ContractPrice | None) -> None:
    ref = f"subscription_contract:{contract}"
    expected = value.value
    actual = price.transaction_price if price is not None else Money.zero(expected.currency)
    if expected.currency == books.currency == actual.currency and not out.wants(
            ref, expected.amount != actual.amount):
        return  # an agreeing item the collector does not keep: no item built
    cause = "not_in_revenue_engine" if price is None else "transaction_price_differs"
    item = _item(books, ref, expected, actual, cause, value.customer_id)
    if expected.currency == books.currency == actual.currency:
        out.keep(item)  # counted above
    else:
        notes.compare(out, item)


def _compare_memo(books: Books, out: Collector, notes: _Foreign, memo: DocumentAmount,
                  taken: Mapping[str, Money]) -> None:
    zero = Money.zero(memo.currency)
    expected = Money.from_minor(memo.amount_minor, memo.currency)
    actual = taken.get(memo.document_id, zero)
    cause = "not_in_revenue_engine" if memo.document_id not in taken else "adjustment_differs"
    notes.compare(out, _item(books, f"credit_memo:{memo.document_id}", expected, actual, cause,
                             memo.customer_id))


def _grouped(memos: Iterable[ContractDocument]) -> Iterable[tuple[str, list[DocumentAmount]]]:
    """Consecutive memos of one contract, as (contract id, memos)."""
    current: str | None = None
    group: list[DocumentAmount] = []
    for memo in memos:
        if current is not None and memo.contract_id != current:
            yield current, group
            group = []
        current = memo.contract_id
        group.append(memo.document)
    if current is not None:
        yield current, group


def payments_vs_ar_applications(source: Books | Snapshot) -> CheckResult:
    books = _books(source)
    out, notes = Collector(books.watched), _Foreign(books)
    out.compared += books.payments_agreeing
    pairs = merge(books.payments(), books.erp_applied(),
                  lambda d: d.document_id, lambda d: d.document_id)
    for payment_id, payment, applied in pairs:
        if payment is None:
            continue
        actual = applied.amount_minor if applied is not None else 0
        ref = f"payment:{payment_id}"
        cause = "not_applied_in_erp" if applied is None else "application_differs"
        if payment.currency != books.currency:
            if actual != payment.amount_minor:
                notes.compare(out, _item(books, ref, Money.from_minor(
                    payment.amount_minor, payment.currency), Money.from_minor(
                    actual, payment.currency), cause, payment.customer_id))
            continue
        _compare(out, books, ref, payment.amount_minor, actual, payment.currency, cause,
                 payment.customer_id)
    return notes.result("payments_vs_ar_applications", out)


class _Foreign:
    """Items in the functional currency are compared; others' breaks go to the notes."""

    def __init__(self, books: Books) -> None:
        self._books, self.notes = books, list[str]()

    def compare(self, out: Collector, item: Item) -> None:
        if item.expected.currency != self._books.currency:
            if item.is_break:
                self.notes.append(f"{item.ref}: {item.variance} ({item.cause})")
            return
        if out.wants(item.ref, item.is_break):
            out.keep(item)

    def result(self, name: str, out: Collector) -> CheckResult:
        books = self._books
        return CheckResult(name, books.legal_entity, books.currency, tuple(out.items),
                           tuple(self.notes), compared=out.compared)


def recognised_vs_gl_revenue(source: Books | Snapshot) -> CheckResult:
    books = _books(source)
    items = [_item(books, f"period:{p.name}", p.recognised, p.gl_revenue,
                   "revenue_journal_missing_or_differs",
                   explained=None if p.closed else "period_not_closed")
             for p in books.periods]
    return CheckResult("recognised_vs_gl_revenue", books.legal_entity, books.currency,
                       tuple(items), _foreign_note(books))


def _in_currency(books: Books, totals: Iterable[PositionTotals]) -> PositionTotals:
    """The totals of the books' currency (zero when the engine has no contract in it)."""
    zero = books.zero()
    return next((t for t in totals if t.currency == books.currency),
                PositionTotals(books.currency, 0, zero, zero, zero, zero, zero, zero))


def deferred_revenue_rollforward(source: Books | Snapshot) -> CheckResult:
    """Opening + billings - recognised ± adjustments = closing (the engine's identity), and
    closing = the GL balance, for deferred revenue and for contract assets."""
    books = _books(source)
    o = _in_currency(books, books.opening())
    c = _in_currency(books, books.closing_totals())
    o_net = o.deferred_revenue - o.contract_asset - o.unbilled_receivable
    closing_deferred = c.deferred_revenue
    closing_asset = c.contract_asset + c.unbilled_receivable
    credits = c.credited - o.credited
    billings = c.billed - o.billed
    recognised = c.recognised - o.recognised
    computed = o_net + (billings + credits) - credits - recognised
    explained = None if books.as_of_closed else "period_not_closed"
    items = [
        _item(books, "rollforward:identity", closing_deferred - closing_asset, computed,
              "rollforward_does_not_foot"),
        _item(books, "gl:deferred_revenue", closing_deferred,
              -books.gl_balance("deferred_revenue") - books.gl_balance("refund_liability"),
              "gl_deferred_differs", explained=explained),
        _item(books, "gl:contract_asset", closing_asset, books.gl_balance("contract_asset")
              + books.gl_balance("unbilled_receivable"), "gl_contract_asset_differs",
              explained=explained),
    ]
    notes = (f"opening {o_net.amount}, billings {(billings + credits).amount}, "
             f"adjustments {(-credits).amount}, recognised {recognised.amount}, "
             f"closing {computed.amount}", *_foreign_note(books))
    return CheckResult("deferred_revenue_rollforward", books.legal_entity, books.currency,
                       tuple(items), notes)


def _foreign_note(books: Books) -> tuple[str, ...]:
    foreign = sum(t.contracts for t in books.closing_totals() if t.currency != books.currency)
    if not foreign or books.foreign_checked:
        return ()
    return (f"{foreign} contract(s) not in {books.currency} are left out of the GL "
            "comparison (the GL holds them converted)",)


CHECKS: tuple[Callable[[Books | Snapshot], CheckResult], ...] = (
    billing_vs_erp_ar,
    contract_value_vs_transaction_price,
    credit_memos_vs_deferred_adjustments,
    payments_vs_ar_applications,
    recognised_vs_gl_revenue,
    deferred_revenue_rollforward,
    tax_vs_tax_payable,
)
# Run again on the books of each other currency the revenue engine holds contracts in.
REVENUE_CHECKS = (recognised_vs_gl_revenue, deferred_revenue_rollforward)
