"""Billing documents as canonical JSON: the shape `finsync.domain.codec` decodes.

Rules (docs/events.md §2-3):
- Money is a decimal string; the currency is the document's own `currency` field (payments
  and refunds carry it at the top level). Dates are ISO dates.
- `external_refs` maps a system to the object's id there.
- The hub's decoder wants a non-empty `line_id` on every amendment change and a non-empty
  `before`/`after` when present: a contract-level change (`line_id == ""`) travels with
  `line_id` `CONTRACT_LEVEL` ("*"), and an empty `before`/`after` (a ramp that had no steps)
  travels as null. Billing's own tables keep the diff exactly as the core made it.
- `domain.codec.encode` is *not* this shape (it nests money as `{amount, currency}`), so every
  billing document is written here, and read back with the domain's decoders.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from finsync.domain.codec import Reader
from finsync.domain.contract import (
    ContractAmendment,
    ContractChange,
    ContractLine,
    RampStep,
    SubscriptionContract,
)
from finsync.domain.invoice import CreditMemo, DocumentLine, Invoice, UsageRecord
from finsync.domain.money import Money
from finsync.domain.party import CustomerAccount
from finsync.domain.payment import Payment, Refund
from finsync.domain.refs import ExternalRefs
from finsync.systems.billing.event import UsageCharge

CONTRACT_LEVEL = "*"

Json = dict[str, Any]


def money(value: Money) -> str:
    return str(value.amount)


def refs(value: ExternalRefs) -> dict[str, str]:
    return dict(value.pairs)


def customer(value: CustomerAccount) -> Json:
    return {"id": value.id, "name": value.name, "legal_entity": value.legal_entity,
            "currency": value.currency, "billing_country": value.billing_country,
            "version": value.version, "external_refs": refs(value.refs)}


def ramp_step(step: RampStep) -> Json:
    return {"starts_on": step.starts_on.isoformat(), "quantity": step.quantity,
            "unit_price": money(step.unit_price)}


def contract_line(line: ContractLine) -> Json:
    return {"line_id": line.line_id, "product_id": line.product_id, "price_id": line.price_id,
            "quantity": line.quantity, "unit_price": money(line.unit_price),
            "start_date": line.start_date.isoformat(), "end_date": line.end_date.isoformat(),
            "ramp": [ramp_step(s) for s in line.ramp]}


def decode_line(r: Reader, currency: str) -> ContractLine:
    """A contract line as `contract_line` wrote it (billing's renewal baseline)."""
    ramp = r.items("ramp", lambda s: RampStep(s.day("starts_on"), s.integer("quantity"),
                                                s.money("unit_price", currency)))
    return ContractLine(r.text("line_id"), r.text("product_id"), r.text("price_id"),
                        r.integer("quantity"), r.money("unit_price", currency),
                        r.day("start_date"), r.day("end_date"), ramp)


def contract(value: SubscriptionContract) -> Json:
    return {"id": value.id, "customer_id": value.customer_id,
            "legal_entity": value.legal_entity, "currency": value.currency,
            "start_date": value.start_date.isoformat(), "end_date": value.end_date.isoformat(),
            "billing_frequency": value.billing_frequency.value, "version": value.version,
            "lines": [contract_line(line) for line in value.lines],
            "external_refs": refs(value.refs)}


def change(value: ContractChange) -> Json:
    return {"op": value.op, "line_id": value.line_id or CONTRACT_LEVEL,
            "before": value.before or None, "after": value.after or None}


def amendment(value: ContractAmendment) -> Json:
    return {"id": value.id, "contract_id": value.contract_id, "version": value.version,
            "effective_date": value.effective_date.isoformat(), "reason": value.reason,
            "changes": [change(c) for c in value.changes], "contract": contract(value.contract)}


def document_line(line: DocumentLine) -> Json:
    return {"line_id": line.line_id, "product_id": line.product_id,
            "description": line.description, "quantity": line.quantity,
            "amount": money(line.amount), "tax_amount": money(line.tax_amount),
            "service_start": line.service_start.isoformat(),
            "service_end": line.service_end.isoformat(), "proration": line.proration,
            "contract_line_id": line.contract_line_id}


def invoice(value: Invoice) -> Json:
    return {"id": value.id, "number": value.number, "customer_id": value.customer_id,
            "contract_id": value.contract_id, "contract_version": value.contract_version,
            "legal_entity": value.legal_entity, "currency": value.currency,
            "issue_date": value.issue_date.isoformat(), "due_date": value.due_date.isoformat(),
            "lines": [document_line(line) for line in value.lines],
            "subtotal": money(value.subtotal), "tax_total": money(value.tax_total),
            "total": money(value.total), "external_refs": refs(value.refs)}


def credit_memo(value: CreditMemo) -> Json:
    return {"id": value.id, "number": value.number, "invoice_id": value.invoice_id,
            "customer_id": value.customer_id, "legal_entity": value.legal_entity,
            "currency": value.currency, "issue_date": value.issue_date.isoformat(),
            "reason": value.reason, "lines": [document_line(line) for line in value.lines],
            "subtotal": money(value.subtotal), "tax_total": money(value.tax_total),
            "total": money(value.total), "external_refs": refs(value.refs),
            "applied_to_invoice": None if value.applied_to_invoice is None
            else money(value.applied_to_invoice)}


def payment(value: Payment) -> Json:
    return {"id": value.id, "customer_id": value.customer_id,
            "legal_entity": value.legal_entity, "currency": value.amount.currency,
            "amount": money(value.amount), "received_on": value.received_on.isoformat(),
            "applications": [{"invoice_id": a.invoice_id, "amount": money(a.amount)}
                             for a in value.applications],
            "external_refs": refs(value.refs)}


def refund(value: Refund) -> Json:
    return {"id": value.id, "payment_id": value.payment_id, "customer_id": value.customer_id,
            "legal_entity": value.legal_entity, "currency": value.amount.currency,
            "amount": money(value.amount), "issued_on": value.issued_on.isoformat(),
            "reason": value.reason, "external_refs": refs(value.refs),
            "from_credit": None if value.from_credit is None else money(value.from_credit),
            "reopens_invoice": value.reopens_invoice}


def usage(value: UsageRecord) -> Json:
    return {"id": value.id, "contract_id": value.contract_id, "product_id": value.product_id,
            "quantity": value.quantity, "occurred_on": value.occurred_on.isoformat()}


def usage_charge(value: UsageCharge) -> Json:
    return {"id": value.id, "contract_id": value.contract_id, "line_id": value.line_id,
            "product_id": value.product_id, "period_start": value.period.start.isoformat(),
            "period_end": value.period.end.isoformat(), "used": value.used,
            "included": value.included, "billable": value.billable,
            "currency": value.amount.currency, "amount": money(value.amount),
            "drawn": money(value.drawn), "invoiced": money(value.invoiced),
            "invoice_id": value.invoice_id}


def document(value: object) -> Json:
    """Any document billing emits to the hub, in its canonical shape."""
    for kind, write in _WRITERS:
        if isinstance(value, kind):
            return write(value)
    raise TypeError(f"billing has no canonical shape for {type(value).__name__}")


_WRITERS: tuple[tuple[type[Any], Callable[[Any], Json]], ...] = (
    (ContractAmendment, amendment), (SubscriptionContract, contract), (Invoice, invoice),
    (CreditMemo, credit_memo), (Payment, payment), (Refund, refund), (UsageRecord, usage),
    (CustomerAccount, customer), (UsageCharge, usage_charge),
)
