"""The tax of one document: pure, from the rules, the certificates and the request.

Rules (in this order, per document; docs/tax/engine.md):
1. The customer's address names one jurisdiction (`TaxRules.jurisdiction_of`); an unknown
   one is refused. The seller's legal entity must have a country.
2. A jurisdiction that levies no tax answers `not_taxable` for every line (a US customer
   with no region: jurisdiction "US").
3. EU B2B reverse charge: a customer in an EU member state other than the seller's
   entity's country (an EU or a non-EU seller: the place of supply of a B2B service is the
   customer's, who accounts for the VAT) with a VAT id well formed for its country: every
   line `reverse_charge`, tax 0. An
   EU customer's VAT id that is not well formed is refused (`invalid_vat_id`): taxing a
   business that meant to give its id would be as wrong as not taxing it.
4. Per line: a product tax code the jurisdiction does not tax is `not_taxable`; else a
   customer certificate valid on the document date makes it `exempt`; else the rate in
   effect on the date applies (`taxable`), none configured is refused.
5. Every line is in the document's currency, at its minor units (else refused).
6. Taxable lines are rounded as the jurisdiction rounds (`rounding`); every line gets one
   jurisdiction line, with tax 0 and its reason when it is not taxable.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from finsync.domain.money import Money
from finsync.domain.tax import (
    TaxDetail,
    TaxedLine,
    TaxRefusedError,
    TaxRequest,
    TaxRequestLine,
    TaxResult,
    TaxTreatment,
)
from finsync.systems.tax.certificate import ExemptionCertificate, covering
from finsync.systems.tax.rounding import exact_tax, round_document, round_each
from finsync.systems.tax.rules import EU_COUNTRIES, Jurisdiction, Rounding, TaxRules
from finsync.systems.tax.vat_id import is_valid_format

_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class _Decision:
    treatment: TaxTreatment
    rate: Decimal = _ZERO


def quote(rules: TaxRules, certificates: Iterable[ExemptionCertificate],
          request: TaxRequest) -> TaxResult:
    """The tax of `request`'s lines; raises `TaxRefusedError` when it cannot answer."""
    for line in request.lines:
        if line.amount.currency != request.currency:
            raise TaxRefusedError(f"{request.document_id} line {line.line_id} is in "
                                  f"{line.amount.currency}, the document in "
                                  f"{request.currency}", code="tax_currency_mismatch")
        if line.amount.quantize() != line.amount:
            raise TaxRefusedError(f"{request.document_id} line {line.line_id}: "
                                  f"{line.amount} is not in minor units",
                                  code="tax_amount_invalid")
    jurisdiction = rules.jurisdiction_of(request.address)
    whole = _document_treatment(rules, jurisdiction, request)
    held = tuple(certificates)
    decisions = [whole or _line_decision(rules, held, jurisdiction, request, line)
                 for line in request.lines]
    taxes = _rounded(jurisdiction, request, decisions)
    lines = tuple(_taxed(jurisdiction, line, decision, tax)
                  for line, decision, tax in zip(request.lines, decisions, taxes, strict=True))
    return TaxResult(request.document_id, lines)


def _document_treatment(rules: TaxRules, jurisdiction: Jurisdiction,
                        request: TaxRequest) -> _Decision | None:
    seller = rules.seller_country(request.legal_entity)
    if not jurisdiction.levies_tax:
        return _Decision(TaxTreatment.NOT_TAXABLE)
    customer = request.address.country
    if customer not in EU_COUNTRIES or not request.tax_id:
        return None
    if not is_valid_format(request.tax_id, customer):
        raise TaxRefusedError(f"customer {request.customer_id}'s VAT id {request.tax_id!r} "
                              f"is not a well-formed {customer} VAT id", code="invalid_vat_id")
    if seller != customer:
        return _Decision(TaxTreatment.REVERSE_CHARGE)
    return None


def _line_decision(rules: TaxRules, certificates: Sequence[ExemptionCertificate],
                   jurisdiction: Jurisdiction, request: TaxRequest,
                   line: TaxRequestLine) -> _Decision:
    if line.tax_code in jurisdiction.not_taxable:
        return _Decision(TaxTreatment.NOT_TAXABLE)
    if covering(certificates, request.customer_id, jurisdiction.code, request.on):
        return _Decision(TaxTreatment.EXEMPT)
    return _Decision(TaxTreatment.TAXABLE,
                     rules.rate(jurisdiction.code, line.tax_code, request.on))


def _rounded(jurisdiction: Jurisdiction, request: TaxRequest,
             decisions: Sequence[_Decision]) -> tuple[Money, ...]:
    """Each line's tax: 0 where not taxable, rounded as the jurisdiction rounds."""
    exacts = [exact_tax(line.amount, d.rate, line.tax_inclusive)
              for line, d in zip(request.lines, decisions, strict=True)
              if d.treatment is TaxTreatment.TAXABLE]
    if jurisdiction.rounding is Rounding.DOCUMENT:
        rounded = iter(round_document(exacts, request.currency))
    else:
        rounded = iter(round_each(exacts, request.currency))
    zero = Money.zero(request.currency)
    return tuple(next(rounded) if d.treatment is TaxTreatment.TAXABLE else zero
                 for d in decisions)


def _taxed(jurisdiction: Jurisdiction, line: TaxRequestLine, decision: _Decision,
           tax: Money) -> TaxedLine:
    net = line.amount - tax if line.tax_inclusive else line.amount
    detail = TaxDetail(jurisdiction.code, jurisdiction.tax_type.value, decision.rate, net,
                       tax, decision.treatment)
    return TaxedLine(line.line_id, net, tax, (detail,))
