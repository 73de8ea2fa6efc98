"""Tax: what a tax engine is asked, what it answers, and the breakdown a document keeps.

Rules:
- A tax engine is asked about one document at a time (`TaxRequest`): the seller's legal
  entity, the customer's tax address and VAT id, the issue date, and each line with its
  product tax code and whether its amount already includes tax.
- It answers one `TaxedLine` per asked line, in order: the line's `net` amount (what
  revenue sees), its `tax`, and the jurisdiction lines (`TaxDetail`) the tax is made of.
  Exclusive: net = the asked amount. Inclusive: net + tax = the asked amount.
- A line's jurisdiction lines sum exactly to its tax, every amount in the document's
  currency at minor units (`check_result`, which a caller runs on any engine's answer).
- A line no jurisdiction taxes still has a jurisdiction line that says why (exempt by a
  customer's certificate, not taxable for that product, reverse charged), with amount 0:
  tax is zero for a stated reason, never silently.
- `TaxUnavailableError`: the engine cannot answer now (down, timed out), a retry may
  cure it. `TaxRefusedError`: the engine refuses this request (unknown jurisdiction, an
  invalid address or VAT id); master data must change first. Both are `tax_failure`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum

from finsync.domain.errors import DomainError, ExceptionClass, FinsyncError
from finsync.domain.money import Money, total

_COUNTRY = re.compile(r"[A-Z]{2}")
_REGION = re.compile(r"[A-Z0-9]{1,3}")
_JURISDICTION = re.compile(r"[A-Z]{2}(-[A-Z0-9]{1,3})?(-[A-Z0-9_]{1,16})?")


class TaxTreatment(StrEnum):
    """How a jurisdiction treated a line; every value but TAXABLE leaves no tax."""

    TAXABLE = "taxable"
    EXEMPT = "exempt"                  # the customer holds a valid exemption certificate
    NOT_TAXABLE = "not_taxable"        # the product is not taxed there (zero rate)
    REVERSE_CHARGE = "reverse_charge"  # B2B with a valid VAT id: the customer accounts for it


class TaxDocumentKind(StrEnum):
    INVOICE = "invoice"
    CREDIT_MEMO = "credit_memo"


class TaxError(FinsyncError):
    code = "tax_failure"
    exception_class = ExceptionClass.TAX_FAILURE

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class TaxUnavailableError(TaxError):
    """The tax engine cannot answer now; asking again later may work."""

    code = "tax_unavailable"


class TaxRefusedError(TaxError, DomainError):
    """The tax engine refuses this request: retrying the same request cannot help."""

    code = "tax_refused"


@dataclass(frozen=True, slots=True)
class TaxAddress:
    """Where a customer is taxed: an ISO 3166-1 country and, where the country taxes by
    region (US states, Canadian provinces), its ISO 3166-2 subdivision code."""

    country: str
    region: str | None = None
    postal_code: str | None = None

    def __post_init__(self) -> None:
        if not _COUNTRY.fullmatch(self.country):
            raise DomainError(f"tax address country {self.country!r} is not an ISO 3166-1 "
                              "alpha-2 code")
        if self.region is not None and not _REGION.fullmatch(self.region):
            raise DomainError(f"tax address region {self.region!r} is not an ISO 3166-2 "
                              "subdivision code")


@dataclass(frozen=True, slots=True)
class TaxDetail:
    """One jurisdiction's share of a line's tax: `amount` = `taxable` x `rate`, rounded as
    the jurisdiction rounds (per line, or per document across its lines)."""

    jurisdiction: str  # "US-NY", "GB", "DE"; a local jurisdiction as "US-NY-NYC"
    tax_type: str      # "sales_tax", "vat"
    rate: Decimal
    taxable: Money
    amount: Money
    treatment: TaxTreatment = TaxTreatment.TAXABLE

    def __post_init__(self) -> None:
        if not _JURISDICTION.fullmatch(self.jurisdiction):
            raise DomainError(f"tax jurisdiction {self.jurisdiction!r} is not a code such "
                              "as 'DE' or 'US-NY'")
        if not isinstance(self.rate, Decimal) or not 0 <= self.rate < 1:
            raise DomainError(f"tax rate {self.rate!r} of {self.jurisdiction} must be a "
                              "Decimal in [0, 1)")
        if self.taxable.currency != self.amount.currency:
            raise DomainError(f"tax of {self.jurisdiction}: base and tax in two currencies")
        if self.treatment is not TaxTreatment.TAXABLE and not self.amount.is_zero:
            raise DomainError(f"tax of {self.jurisdiction} is {self.treatment.value} but "
                              f"{self.amount}")


@dataclass(frozen=True, slots=True)
class TaxRequestLine:
    line_id: str
    product_id: str
    tax_code: str
    amount: Money
    tax_inclusive: bool = False


@dataclass(frozen=True, slots=True)
class TaxRequest:
    document_id: str
    kind: TaxDocumentKind
    legal_entity: str
    customer_id: str
    address: TaxAddress
    currency: str
    on: date
    lines: tuple[TaxRequestLine, ...]
    tax_id: str | None = None  # the customer's VAT id, for B2B reverse charge


@dataclass(frozen=True, slots=True)
class TaxedLine:
    line_id: str
    net: Money
    tax: Money
    details: tuple[TaxDetail, ...]


@dataclass(frozen=True, slots=True)
class TaxResult:
    document_id: str
    lines: tuple[TaxedLine, ...]

    def tax_total(self, currency: str) -> Money:
        return total([line.tax for line in self.lines], currency)


def check_details(where: str, tax: Money, details: Sequence[TaxDetail]) -> None:
    """A line's jurisdiction lines are in its currency at minor units and sum to its tax."""
    for detail in details:
        for money in (detail.taxable, detail.amount):
            if money.currency != tax.currency or money.quantize() != money:
                raise DomainError(f"{where}: {detail.jurisdiction}'s {money} is not a "
                                  f"{tax.currency} amount in minor units")
    if details and total([d.amount for d in details], tax.currency) != tax:
        raise DomainError(f"{where}: jurisdiction lines do not sum to the tax {tax}")


def check_result(request: TaxRequest, result: TaxResult) -> TaxResult:
    """Refuse an engine's answer that cannot go on the document (`tax_answer_invalid`)."""
    try:
        _check_result(request, result)
    except DomainError as exc:
        raise TaxRefusedError(f"tax engine's answer for {request.document_id}: {exc}",
                              code="tax_answer_invalid") from exc
    return result


def _check_result(request: TaxRequest, result: TaxResult) -> None:
    asked = [line.line_id for line in request.lines]
    answered = [line.line_id for line in result.lines]
    if result.document_id != request.document_id or asked != answered:
        raise DomainError(f"answered lines {answered} of {result.document_id}, asked {asked}")
    for ask, line in zip(request.lines, result.lines, strict=True):
        where = f"line {line.line_id}"
        for money in (line.net, line.tax):
            if money.currency != request.currency or money.quantize() != money:
                raise DomainError(f"{where}: {money} is not a {request.currency} amount "
                                  "in minor units")
        whole = line.net + line.tax if ask.tax_inclusive else line.net
        if whole != ask.amount:
            raise DomainError(f"{where}: net {line.net} and tax {line.tax} do not make "
                              f"the asked {ask.amount}")
        if not line.details:
            raise DomainError(f"{where}: no jurisdiction line says why its tax is "
                              f"{line.tax}")
        check_details(where, line.tax, line.details)
