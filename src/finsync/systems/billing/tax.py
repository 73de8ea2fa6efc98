"""What billing asks of a tax engine, and how a credit reverses the tax of what it credits.

Rules:
- Billing never computes tax. For each invoice it is about to issue it asks a `TaxQuoter`
  (the tax port's `quote`, structurally `connectors.ports.TaxQuotePort`) with one
  `TaxRequest`: the customer's tax address and VAT id, the issue date, and each line with
  its product's tax code and whether its price includes tax. Every answer is checked
  (`domain.tax.check_result`) before it goes on a document.
- The customer's address is built from its master data; one the tax domain refuses (a
  malformed country or region) is the engine's refusal `invalid_address`: master data
  must change first, as for any refusal.
- A credit memo does not ask again: it reverses the credited line's own tax, split over
  the line's jurisdiction lines in proportion to what is left of each (largest
  remainder), and the credit that empties a line takes exactly what is left of each
  jurisdiction line. So the credits of a line, summed, are its tax per jurisdiction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from typing import Protocol

from finsync.domain.errors import DomainError
from finsync.domain.money import Money, total
from finsync.domain.party import CustomerAccount
from finsync.domain.tax import (
    TaxAddress,
    TaxDetail,
    TaxDocumentKind,
    TaxRefusedError,
    TaxRequest,
    TaxRequestLine,
    TaxResult,
    check_result,
)


class TaxQuoter(Protocol):
    """The tax engine as billing sees it: read-only, asked inside billing's transaction.
    Raises `TaxUnavailableError` (a retry may cure it) or `TaxRefusedError`."""

    def quote(self, request: TaxRequest) -> TaxResult: ...


def tax_address(customer: CustomerAccount) -> TaxAddress:
    """The customer's tax address; malformed master data is a refusal (`invalid_address`)."""
    try:
        return customer.tax_address()
    except DomainError as exc:
        raise TaxRefusedError(f"customer {customer.id}: {exc}", code="invalid_address") from exc


def invoice_request(document_id: str, customer: CustomerAccount, legal_entity: str,
                    currency: str, on: date,
                    lines: Sequence[TaxRequestLine]) -> TaxRequest:
    """The request for one invoice issued on `on`."""
    return TaxRequest(document_id, TaxDocumentKind.INVOICE, legal_entity, customer.id,
                      tax_address(customer), currency, on, tuple(lines), customer.tax_id)


def quoted(quoter: TaxQuoter, request: TaxRequest) -> TaxResult:
    """The engine's answer, checked; a bad answer is a refusal (`tax_answer_invalid`)."""
    return check_result(request, quoter.quote(request))


def reversed_taxes(details: Sequence[TaxDetail], left: Sequence[TaxDetail], tax: Money,
                   credited: Money, line_amount: Money, empties: bool) -> tuple[TaxDetail, ...]:
    """The jurisdiction lines of a credit of `credited` (tax `tax`) on a line whose
    jurisdiction lines are `details`, of which `left` (same order) is still uncredited.
    A credit that empties the line takes `left` exactly."""
    if empties:
        return tuple(left)
    if not details:
        return ()
    weights = [d.amount.to_minor() for d in left]
    parts = tax.allocate(weights) if sum(weights) > 0 else tuple(
        Money.zero(tax.currency) for _ in left)
    return tuple(replace(d, amount=part, taxable=_taxable_share(d, rest, credited, line_amount))
                 for d, rest, part in zip(details, left, parts, strict=True))


def _taxable_share(detail: TaxDetail, left: TaxDetail, credited: Money,
                   line_amount: Money) -> Money:
    share = Money(detail.taxable.amount * credited.amount / line_amount.amount,
                  credited.currency).quantize()
    return share if abs(share.amount) <= abs(left.taxable.amount) else left.taxable


def details_left(details: Sequence[TaxDetail],
                 credits: Sequence[Sequence[TaxDetail]]) -> tuple[TaxDetail, ...]:
    """What of each jurisdiction line is not yet credited (`credits`: the earlier credits'
    jurisdiction lines of the same line, in the same order)."""
    result = []
    for i, detail in enumerate(details):
        taken = [c[i] for c in credits if len(c) == len(details)]
        currency = detail.amount.currency
        result.append(replace(
            detail, amount=detail.amount - total([x.amount for x in taken], currency),
            taxable=detail.taxable - total([x.taxable for x in taken], currency)))
    return tuple(result)
