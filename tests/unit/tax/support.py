"""Builders for the tax engine's tests: the default rules and requests in a line each."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

from finsync.domain.invoice import CreditMemo, DocumentLine, Invoice
from finsync.domain.money import Money, total
from finsync.domain.tax import (
    TaxAddress,
    TaxDocumentKind,
    TaxRequest,
    TaxRequestLine,
    TaxResult,
    check_result,
)
from finsync.systems.tax.certificate import ExemptionCertificate
from finsync.systems.tax.config_file import load_tax_rules
from finsync.systems.tax.engine import quote

RULES = load_tax_rules()
ON = date(2026, 3, 15)


def line(amount: str, currency: str = "USD", *, line_id: str = "l1", tax_code: str = "saas",
         inclusive: bool = False) -> TaxRequestLine:
    return TaxRequestLine(line_id, "prod_platform_seat", tax_code, Money.of(amount, currency),
                          inclusive)


def request(country: str, region: str | None = None, *lines: TaxRequestLine,
            entity: str = "le_us", currency: str = "USD", on: date = ON,
            tax_id: str | None = None, customer: str = "cus_1",
            document_id: str = "inv_1") -> TaxRequest:
    return TaxRequest(document_id, TaxDocumentKind.INVOICE, entity, customer,
                      TaxAddress(country, region), currency, on,
                      lines or (line("100.00", currency),), tax_id)


def quoted(ask: TaxRequest, *certificates: ExemptionCertificate) -> TaxResult:
    """The engine's answer, checked as billing checks any engine's answer."""
    return check_result(ask, quote(RULES, certificates, ask))


def invoice_of(ask: TaxRequest, result: TaxResult, *, number: str = "INV-1") -> Invoice:
    """The invoice billing issues from a quote: each line's tax and jurisdiction lines."""
    lines = tuple(DocumentLine(taxed.line_id, asked.product_id, "seat", 1, taxed.net,
                               taxed.tax, ask.on, date(ask.on.year + 1, ask.on.month, 1),
                               taxes=taxed.details)
                  for asked, taxed in zip(ask.lines, result.lines, strict=True))
    subtotal = total([x.amount for x in lines], ask.currency)
    tax = total([x.tax_amount for x in lines], ask.currency)
    return Invoice(ask.document_id, number, ask.customer_id, None, None, ask.legal_entity,
                   ask.currency, ask.on, ask.on, lines, subtotal, tax, subtotal + tax)


def memo_of(invoice: Invoice, memo_id: str, reason: str, on: date,
            fraction: Decimal = Decimal(1)) -> CreditMemo:
    """A credit memo of `fraction` of every line, reversing that share of each jurisdiction
    line (whole lines when the fraction is 1)."""
    lines = tuple(replace(x, amount=(x.amount * fraction).quantize(),
                          tax_amount=(x.tax_amount * fraction).quantize(),
                          taxes=tuple(replace(d, taxable=(d.taxable * fraction).quantize(),
                                              amount=(d.amount * fraction).quantize())
                                      for d in x.taxes))
                  for x in invoice.lines)
    subtotal = total([x.amount for x in lines], invoice.currency)
    tax = total([x.tax_amount for x in lines], invoice.currency)
    return CreditMemo(memo_id, f"CM-{memo_id}", invoice.id, invoice.customer_id,
                      invoice.legal_entity, invoice.currency, on, reason, lines, subtotal,
                      tax, subtotal + tax)
