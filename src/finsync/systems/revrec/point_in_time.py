"""A one-off invoice (no contract behind it) as a point-in-time revenue contract.

Rules:
- An invoice that names no contract is its own contract (606-10-25-1: the invoice is the
  customer's enforceable agreement): the revenue contract follows the invoice's id, and the
  contract's lines are the invoice's lines, under their own ids.
- Each line that bills a positive amount is one performance obligation satisfied at a point
  in time (606-10-25-30), delivered on its service period's last day, or on its one day when
  it has none (a plain invoice item: start = end).
- Credit lines of the invoice (negative amounts, e.g. a discount given as an item) lower the
  transaction price: they are shared over the positive lines by largest remainder in
  proportion to their amounts (606-10-32-36: a discount is allocated proportionally), and
  each obligation bills its line net of its share. An invoice that credits more than it
  bills has no contract to book and is refused (`AllocationError`).
- SSPs: the catalogue's when it has one for every product on the issue date; otherwise each
  product's own price on the invoice (net amount / quantity, averaged over its lines), the
  observable price of a separate sale (606-10-32-32).
- Recognition terms: the caller's (granularity, concession reasons), every product point in
  time. Booking and the invoice's billings are one step (`book_invoice`).
- A credit memo against such a contract is netted the same way (`price_change.net_lines`),
  so a void of the invoice reverses exactly what it billed; a void cancels the contract
  (see `price_change`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal

from finsync.domain.catalog import BillingFrequency, StandaloneSellingPrice
from finsync.domain.contract import ContractLine, SubscriptionContract
from finsync.domain.invoice import DocumentLine, Invoice
from finsync.domain.money import Money
from finsync.systems.revrec.booking import book_contract
from finsync.systems.revrec.event import ContractBooked
from finsync.systems.revrec.pattern import RecognitionPattern
from finsync.systems.revrec.price_change import net_lines, record_billings
from finsync.systems.revrec.state import RevenueContractState
from finsync.systems.revrec.terms import RecognitionTerms

# A point-in-time line is priced once, so its billing period plays no part; the contract
# type needs one.
_UNUSED_FREQUENCY = BillingFrequency.MONTHLY


def _delivered_on(line: DocumentLine) -> date:
    if line.service_end > line.service_start:
        return line.service_end - timedelta(days=1)
    return line.service_start


def contract_of(invoice: Invoice) -> SubscriptionContract:
    """The point-in-time contract a one-off invoice is (see the module rules)."""
    lines = tuple(_contract_line(line) for line in net_lines(invoice.lines))
    start = min((line.start_date for line in lines), default=invoice.issue_date)
    end = max((line.end_date for line in lines), default=start + timedelta(days=1))
    return SubscriptionContract(invoice.id, invoice.customer_id, invoice.legal_entity,
                                invoice.currency, start, end, _UNUSED_FREQUENCY, lines,
                                refs=invoice.refs)


def _contract_line(line: DocumentLine) -> ContractLine:
    quantity = max(line.quantity, 1)
    day = _delivered_on(line)
    unit_price = Money(line.amount.amount / quantity, line.amount.currency)
    return ContractLine(line.line_id, line.product_id, line.line_id, quantity, unit_price,
                        day, day + timedelta(days=1))


def terms_of(contract: SubscriptionContract, base: RecognitionTerms) -> RecognitionTerms:
    products = sorted({line.product_id for line in contract.lines})
    return RecognitionTerms(
        patterns=tuple((p, RecognitionPattern.POINT_IN_TIME) for p in products),
        granularity=base.granularity, concession_reasons=base.concession_reasons)


def standalone_selling_prices(contract: SubscriptionContract, catalogue: Sequence[
        StandaloneSellingPrice], on: date) -> tuple[StandaloneSellingPrice, ...]:
    """The catalogue's SSPs if they cover every product, else the invoice's own prices."""
    products = {line.product_id for line in contract.lines}
    if products <= {ssp.product_id for ssp in catalogue}:
        return tuple(catalogue)
    own = []
    for product in sorted(products):
        lines = [line for line in contract.lines if line.product_id == product]
        amount = sum((line.unit_price.amount * line.quantity for line in lines), Decimal(0))
        units = sum(line.quantity for line in lines)
        own.append(StandaloneSellingPrice(product, Money(amount / units, contract.currency), on))
    return tuple(own)


def book_invoice(event_id: str, invoice: Invoice,
                 catalogue: Sequence[StandaloneSellingPrice],
                 base: RecognitionTerms) -> RevenueContractState:
    """The booked point-in-time contract of `invoice`, its billings recorded."""
    contract = contract_of(invoice)
    booked = book_contract(ContractBooked(
        event_id, contract, standalone_selling_prices(contract, catalogue, invoice.issue_date),
        terms_of(contract, base)))
    return record_billings(booked, event_id, invoice.id, invoice.issue_date,
                           net_lines(invoice.lines))
