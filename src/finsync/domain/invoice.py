"""Invoices, credit memos and usage records.

Rules:
- An invoice's lines sum to its subtotal; subtotal + tax total = total (checked at build).
- Every amount of a document is in the document's currency and at its minor-unit precision.
- A credit memo names the invoice it credits and never exceeds it (checked by the owner).
- Two credit-memo reasons mean the same in every system (`VOID`, `WRITE_OFF`); any other
  reason is the source's own word (goodwill, sla_credit, Stripe's order_change …).
- The customer credit billing applied to an invoice when it issued it (a credit balance the
  customer held) is between nothing and the invoice's total, in its currency.
- A credit line may say which part of it relates to what was already delivered
  (`DeliveredPart`: defective units shipped, rework of work done): a part of the line's
  amount, of its sign and not more than it, in the document's currency and minor units.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from finsync.domain.clock import Period
from finsync.domain.errors import DomainError
from finsync.domain.fingerprint import ADDED_LATER
from finsync.domain.money import Money, total
from finsync.domain.refs import ExternalRefs
from finsync.domain.tax import TaxDetail, check_details

# The whole invoice voided: its billing is reversed, as if it had not been issued.
VOID = "void"
# A receivable written off (the invoice marked uncollectible): it stays billed and its tax
# stays owed; the ledger books the loss as bad debt, the revenue engine changes nothing.
WRITE_OFF = "uncollectible"


@dataclass(frozen=True, slots=True)
class DeliveredPart:
    """The part of a credit (or of a change in price) that relates to goods or services
    already delivered: `amount` of it (same sign as the whole), for `quantity` delivered
    units (None: all delivered to date), or for the delivery `delivery_id` names when the
    source has one. The rest of the credit concerns what is still to be delivered."""

    amount: Money
    quantity: int | None = None
    delivery_id: str | None = None

    def __post_init__(self) -> None:
        if self.amount.is_zero:
            raise DomainError("a delivered part needs a non-zero amount")
        if self.quantity is not None and self.quantity < 1:
            raise DomainError(f"a delivered part's quantity must be at least 1, not "
                              f"{self.quantity}")

    def fits(self, whole: Money) -> bool:
        """Whether this part is a part of `whole`: same currency and sign, not more."""
        return (self.amount.currency == whole.currency
                and (self.amount.amount > 0) == (whole.amount > 0)
                and abs(self.amount.amount) <= abs(whole.amount))


@dataclass(frozen=True, slots=True)
class DocumentLine:
    line_id: str
    product_id: str
    description: str
    quantity: int
    amount: Money
    tax_amount: Money
    service_start: date
    service_end: date
    proration: bool = False
    # The contract line this document line bills (several document lines may bill one:
    # ramp pieces, versions); how a revenue engine finds the obligation it belongs to.
    contract_line_id: str | None = None
    # What of a credit line relates to goods or services already delivered (a revenue
    # engine recognises that part at once); None: the line concerns the whole obligation.
    delivered: DeliveredPart | None = field(default=None, metadata=ADDED_LATER)
    # The jurisdiction lines the tax engine answered for this line (they sum to its
    # `tax_amount`); empty on documents from before tax breakdowns, or from a source that
    # sends none.
    taxes: tuple[TaxDetail, ...] = field(default=(), metadata=ADDED_LATER)


def _check_document(doc_id: str, currency: str, lines: Sequence[DocumentLine],
                    subtotal: Money, tax_total: Money, grand_total: Money) -> None:
    amounts = [subtotal, tax_total, grand_total]
    amounts += [m for line in lines for m in (line.amount, line.tax_amount)]
    for money in amounts:
        if money.currency != currency or money.quantize() != money:
            raise DomainError(f"{doc_id}: {money} is not a {currency} amount in minor units")
    for line in lines:
        check_details(f"{doc_id} line {line.line_id}", line.tax_amount, line.taxes)
        part = line.delivered
        if part is not None and not (part.fits(line.amount) and part.amount.quantize()
                                     == part.amount):
            raise DomainError(f"{doc_id}: line {line.line_id}'s delivered part {part.amount} "
                              f"is not a part of its amount {line.amount} in minor units")
    if total([line.amount for line in lines], currency) != subtotal:
        raise DomainError(f"{doc_id}: lines do not sum to the subtotal {subtotal}")
    if total([line.tax_amount for line in lines], currency) != tax_total:
        raise DomainError(f"{doc_id}: line taxes do not sum to the tax total {tax_total}")
    if subtotal + tax_total != grand_total:
        raise DomainError(f"{doc_id}: subtotal + tax differs from total {grand_total}")


@dataclass(frozen=True, slots=True)
class Invoice:
    id: str
    number: str
    customer_id: str
    contract_id: str | None
    contract_version: int | None
    legal_entity: str
    currency: str
    issue_date: date
    due_date: date
    lines: tuple[DocumentLine, ...]
    subtotal: Money
    tax_total: Money
    total: Money
    refs: ExternalRefs = field(default_factory=ExternalRefs)
    # How much of the total billing settled, when it issued the invoice, out of a credit
    # balance the customer held (an earlier credit memo's or overpayment's credit); the rest
    # is what the customer owes. Given, the ERP settles it against the customer's credits.
    customer_credit_applied: Money | None = field(default=None, metadata=ADDED_LATER)

    def __post_init__(self) -> None:
        _check_document(self.id, self.currency, self.lines, self.subtotal, self.tax_total,
                        self.total)
        applied = self.customer_credit_applied
        ceiling = self.total.amount if self.total.amount > 0 else Decimal(0)
        if applied is not None and not (applied.currency == self.currency
                                        and applied.quantize() == applied
                                        and 0 <= applied.amount <= ceiling):
            raise DomainError(f"invoice {self.id}: customer_credit_applied {applied} must be "
                              f"a {self.currency} amount between 0 and {self.total}")


@dataclass(frozen=True, slots=True)
class CreditMemo:
    id: str
    number: str
    invoice_id: str
    customer_id: str
    legal_entity: str
    currency: str
    issue_date: date
    reason: str
    lines: tuple[DocumentLine, ...]
    subtotal: Money
    tax_total: Money
    total: Money
    refs: ExternalRefs = field(default_factory=ExternalRefs)
    # How much of the total billing set against the invoice's open balance when it issued
    # the memo (the rest became a customer credit). Given, the ERP follows it, so the books
    # do not depend on whether the memo or a payment reaches the ERP first.
    applied_to_invoice: Money | None = None

    def __post_init__(self) -> None:
        _check_document(self.id, self.currency, self.lines, self.subtotal, self.tax_total,
                        self.total)
        applied = self.applied_to_invoice
        if applied is not None and not (applied.currency == self.currency
                                        and 0 <= applied.amount <= self.total.amount):
            raise DomainError(f"credit memo {self.id}: applied_to_invoice {applied} must be "
                              f"between 0 and {self.total}")


@dataclass(frozen=True, slots=True)
class HeldInvoice:
    """An invoice billing could not issue because its tax could not be computed: a draft,
    unnumbered, that nothing posts. Each hold and its release are versions of the draft;
    the release names the invoice issued from it.

    `subtotal` (before tax) is the money it holds back; `transient` says whether asking
    the tax engine again may cure it (the engine was down) or master data must change
    first (an unknown jurisdiction, an invalid address)."""

    id: str
    version: int
    customer_id: str
    contract_id: str | None
    legal_entity: str
    currency: str
    issue_date: date
    subtotal: Money
    code: str
    reason: str
    transient: bool
    invoice_id: str | None = None
    refs: ExternalRefs = field(default_factory=ExternalRefs)

    def __post_init__(self) -> None:
        if self.version < 1:
            raise DomainError(f"held invoice {self.id}: version must be at least 1")
        if self.subtotal.currency != self.currency or self.subtotal.quantize() != self.subtotal:
            raise DomainError(f"held invoice {self.id}: subtotal {self.subtotal} is not a "
                              f"{self.currency} amount in minor units")


@dataclass(frozen=True, slots=True)
class UsageRecord:
    id: str
    contract_id: str
    product_id: str
    quantity: int
    occurred_on: date

    def __post_init__(self) -> None:
        if self.quantity < 0:
            raise DomainError(f"usage {self.id}: quantity cannot be negative")


@dataclass(frozen=True, slots=True)
class RatedUsage:
    """Usage of one contract line rated for a period `[period_start, period_end)`: what was
    used, what was included, what is billable, and how it was paid (prepaid drawdown and
    the invoiced rest)."""

    id: str
    contract_id: str
    line_id: str
    product_id: str
    period_start: date
    period_end: date
    used: int
    included: int
    billable: int
    amount: Money
    drawn: Money
    invoiced: Money
    invoice_id: str | None = None

    def __post_init__(self) -> None:
        if self.period_end <= self.period_start:
            raise DomainError(f"rated usage {self.id}: the period must end after it starts")
        if min(self.used, self.included, self.billable) < 0:
            raise DomainError(f"rated usage {self.id}: quantities cannot be negative")
        if self.drawn + self.invoiced != self.amount:
            raise DomainError(f"rated usage {self.id}: drawn + invoiced differs from "
                              f"{self.amount}")

    @property
    def period(self) -> Period:
        return Period(self.period_start, self.period_end)
