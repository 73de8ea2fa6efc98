"""What the checks read: one entity's books as ordered streams (`Books`), from the ports'
snapshots or from in-memory lists (`Snapshot`, for tests and small what-ifs).

Rules:
- Every stream is ordered by its key in code-point order, each key once (`merge`).
- Amounts travel as integer minor units with their currency; a `Money` is made only for an
  item a check keeps.
- `Snapshot` turns lists into the same streams with the same rules as the ports' SQL (an
  invoice's open amount as given; ERP open items summed per document, nothing-open left
  out; applications summed per settling document; revenue positions summed per currency
  and priced per contract), so the checks have one code path.
- The revenue engine's positions come summed per currency (`opening`, `closing_totals`)
  and, per contract, only as the price and credits two checks compare (`closing`): a
  stream read once for both (`Once`), never a list of the book's contracts.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Generic, TypeVar

from finsync.connectors.ports import (
    Application,
    BilledInvoice,
    ContractDocument,
    ContractPrice,
    ContractValue,
    CustomerAmount,
    DocumentAmount,
    PositionTotals,
    Receivable,
    RevenuePosition,
    TaxAmount,
)
from finsync.domain.clock import Period
from finsync.domain.invoice import CreditMemo
from finsync.domain.money import Money
from finsync.domain.payment import Payment, Refund

if TYPE_CHECKING:
    from finsync.recon.checks import ContractChecks

T = TypeVar("T")


class Once(Generic[T]):
    """A value computed by the first check that asks for it and kept for the others of the
    same books: the contract checks share one pass over the engine's contracts."""

    def __init__(self) -> None:
        self._value: T | None = None

    def get(self, compute: Callable[[], T]) -> T:
        if self._value is None:
            self._value = compute()
        return self._value


@dataclass(frozen=True, slots=True)
class PeriodRevenue:
    name: str
    period: Period
    recognised: Money  # by the revenue engine
    gl_revenue: Money  # credit movement of the revenue account in the ERP
    closed: bool


@dataclass(frozen=True, slots=True)
class Books:
    legal_entity: str
    currency: str
    as_of: date
    open_invoices: Callable[[], Iterable[DocumentAmount]]  # billing, every currency
    billing_customers: Callable[[], Iterable[CustomerAmount]]  # in `currency`
    payments: Callable[[], Iterable[DocumentAmount]]  # billing: applications summed
    credit_memos: Callable[[], Iterable[ContractDocument]]
    contract_values: Callable[[], Iterable[ContractValue]]
    erp_open_items: Callable[[], Iterable[DocumentAmount]]
    erp_customers: Callable[[], Iterable[CustomerAmount]]  # in `currency`
    erp_applied: Callable[[], Iterable[DocumentAmount]]
    opening: Callable[[], Iterable[PositionTotals]]  # per currency, the year's first day
    closing: Callable[[], Iterable[ContractPrice]]  # the day after `as_of`, by contract id
    periods: Sequence[PeriodRevenue]
    gl: Mapping[str, Money]
    accounts: Mapping[str, str]
    explained: Mapping[str, str]  # object ref -> the exception (not a break) that names it
    as_of_closed: bool
    watched: Collection[str] = ()  # refs of open breaks: kept even when they agree
    # The revenue checks of the other currencies run on their own books: the GL's converted
    # lines of those are not in `gl` (False: the ERP cannot tell them apart; they are).
    foreign_checked: bool = False
    # Tax per (document, jurisdiction): billing's, and the ERP's tax payable (None: the ERP
    # cannot tell tax per document, so the tax check compares nothing).
    billing_tax: Callable[[], Iterable[TaxAmount]] = tuple
    erp_tax: Callable[[], Iterable[TaxAmount]] | None = tuple
    # Items compared in digest buckets left unread (`digest`): invoices vs open items,
    # payments vs applications.
    documents_agreeing: int = 0
    payments_agreeing: int = 0
    closing_totals: Callable[[], Iterable[PositionTotals]] = tuple  # per currency
    # Not an argument: a copy (`replace`) of the books is new books, with a pass of its own.
    contract_checks: Once[ContractChecks] = field(default_factory=Once, init=False,
                                                  compare=False)

    def zero(self) -> Money:
        return Money.zero(self.currency)

    def gl_balance(self, role: str) -> Money:
        """The GL balance of the role's account (zero: a role the engine does not book)."""
        code = self.accounts.get(role)
        return self.zero() if code is None else self.gl.get(code, self.zero())


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One entity's books as lists (any order)."""

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
    explained: Mapping[str, str]
    as_of_closed: bool
    watched: Collection[str] = field(default=())
    tax_amounts: Sequence[TaxAmount] = ()  # billing's
    tax_payable: Sequence[TaxAmount] | None = ()  # the ERP's (None: it cannot tell)

    def books(self) -> Books:
        return Books(
            self.legal_entity, self.currency, self.as_of, self._open_invoices,
            self._billing_customers, self._payments, self._credit_memos,
            lambda: sorted(self.contract_values, key=lambda c: c.contract_id),
            self._erp_open_items, self._erp_customers, self._erp_applied,
            lambda: position_totals(self.opening), lambda: contract_prices(self.closing),
            self.periods, self.gl, self.accounts, self.explained, self.as_of_closed,
            self.watched, billing_tax=lambda: _by_document(self.tax_amounts),
            erp_tax=None if self.tax_payable is None else self._erp_tax,
            closing_totals=lambda: position_totals(self.closing))

    def _erp_tax(self) -> list[TaxAmount]:
        """Summed per (document, jurisdiction), as the ERP's read sums its lines."""
        assert self.tax_payable is not None
        return _by_document(summed_tax(self.tax_payable))

    def _open_invoices(self) -> list[DocumentAmount]:
        return sorted((DocumentAmount(b.invoice.id, b.invoice.customer_id, b.invoice.currency,
                                      b.open_amount.to_minor()) for b in self.invoices),
                      key=lambda d: d.document_id)

    def _billing_customers(self) -> list[CustomerAmount]:
        balances: dict[str, Money] = {}
        signed: list[tuple[str, Money]] = [(b.invoice.customer_id, b.invoice.total)
                                           for b in self.invoices]
        signed += [(m.customer_id, -m.total) for m in self.credit_memos]
        signed += [(p.customer_id, -p.amount) for p in self.payments]
        signed += [(r.customer_id, r.amount) for r in self.refunds]
        for customer, amount in signed:
            if amount.currency == self.currency:
                balances[customer] = balances.get(customer, Money.zero(self.currency)) + amount
        return [CustomerAmount(c, m.to_minor()) for c, m in sorted(balances.items())]

    def _payments(self) -> list[DocumentAmount]:
        return sorted((DocumentAmount(p.id, p.customer_id, p.amount.currency, sum(
            (a.amount.to_minor() for a in p.applications), 0)) for p in self.payments),
            key=lambda d: d.document_id)

    def _credit_memos(self) -> list[ContractDocument]:
        contract = {b.invoice.id: b.invoice.contract_id or "" for b in self.invoices}
        return sorted((ContractDocument(contract.get(m.invoice_id, ""), DocumentAmount(
            m.id, m.customer_id, m.currency, m.subtotal.to_minor())) for m in self.credit_memos),
            key=lambda c: (c.contract_id, c.document.document_id))

    def _erp_open_items(self) -> list[DocumentAmount]:
        by_document: dict[str, DocumentAmount] = {}
        for r in self.receivables:
            known = by_document.get(r.document_id)
            minor = r.open_amount.to_minor() + (known.amount_minor if known else 0)
            by_document[r.document_id] = DocumentAmount(r.document_id, r.customer_id,
                                                        r.open_amount.currency, minor)
        return [d for _, d in sorted(by_document.items()) if d.amount_minor != 0]

    def _erp_customers(self) -> list[CustomerAmount]:
        totals: dict[str, int] = {}
        for r in self.receivables:
            if r.open_amount.currency == self.currency:
                totals[r.customer_id] = totals.get(r.customer_id, 0) + r.open_amount.to_minor()
        return [CustomerAmount(c, m) for c, m in sorted(totals.items())]

    def _erp_applied(self) -> list[DocumentAmount]:
        totals: dict[str, DocumentAmount] = {}
        for a in self.applications:
            known = totals.get(a.by)
            minor = a.amount.to_minor() + (known.amount_minor if known else 0)
            totals[a.by] = DocumentAmount(a.by, "", a.amount.currency, minor)
        return [d for _, d in sorted(totals.items())]


def position_totals(positions: Iterable[RevenuePosition]) -> list[PositionTotals]:
    """The positions summed per currency (in code order), as an engine sums them."""
    sums: dict[str, list[Money]] = {}
    counts: dict[str, int] = {}
    for p in positions:
        credited = sum((amount for _, amount in p.credits), Money.zero(p.currency))
        held = sums.setdefault(p.currency, [Money.zero(p.currency)] * 6)
        for i, amount in enumerate((p.billed, p.recognised, p.deferred_revenue,
                                    p.contract_asset, p.unbilled_receivable, credited)):
            held[i] = held[i] + amount
        counts[p.currency] = counts.get(p.currency, 0) + 1
    return [PositionTotals(code, counts[code], *sums[code]) for code in sorted(sums)]


def contract_prices(positions: Iterable[RevenuePosition]) -> list[ContractPrice]:
    """Each position's price and credits, by contract id."""
    return sorted((ContractPrice(p.subscription_contract_id, p.customer_id,
                                 p.transaction_price, p.credits) for p in positions),
                  key=lambda c: c.subscription_contract_id)


def summed_tax(rows: Iterable[TaxAmount]) -> list[TaxAmount]:
    """One row per (document, jurisdiction): amounts summed, the earliest month kept."""
    found: dict[tuple[str, str], TaxAmount] = {}
    for row in rows:
        key = (row.document_id, row.jurisdiction)
        known = found.get(key)
        found[key] = row if known is None else TaxAmount(
            row.document_id, row.jurisdiction, min(known.month, row.month), known.currency,
            known.amount_minor + row.amount_minor)
    return list(found.values())


def _by_document(rows: Iterable[TaxAmount]) -> list[TaxAmount]:
    return sorted(rows, key=lambda r: (r.document_id, r.jurisdiction))
