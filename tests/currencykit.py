"""One legal entity billing in several currencies: canonical contracts and invoices in the
domain's own words, as raw bodies for the hub's intake."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

from finsync.domain import codec
from finsync.domain.catalog import BillingFrequency
from finsync.domain.contract import ContractLine, SubscriptionContract
from finsync.domain.envelope import DraftEnvelope
from finsync.domain.events import AnyEvent, ContractCreated, InvoiceIssued
from finsync.domain.invoice import DocumentLine, Invoice
from finsync.domain.money import Money

START, END = date(2026, 1, 1), date(2027, 1, 1)
PRODUCT = "prod_platform_seat"


def contract(currency: str, unit_price: str, seats: int = 10,
             entity: str = "le_us") -> SubscriptionContract:
    """An annual seat contract over 2026 in `currency`: `seats` x `unit_price` a year."""
    return SubscriptionContract(
        f"con_{currency.lower()}", f"cus_{currency.lower()}", entity, currency, START, END,
        BillingFrequency.ANNUAL,
        (ContractLine("ln_seats", PRODUCT, f"price_seat_{currency.lower()}", seats,
                      Money.of(unit_price, currency), START, END),))


def invoice(signed: SubscriptionContract) -> Invoice:
    """The contract's one annual invoice, issued on its first day, no tax."""
    line = signed.lines[0]
    amount = line.unit_price * line.quantity
    zero = Money.zero(signed.currency)
    return Invoice(
        f"inv_{signed.currency.lower()}", f"INV-{signed.currency}", signed.customer_id,
        signed.id, signed.version, signed.legal_entity, signed.currency, START, START,
        (DocumentLine("il_seats", PRODUCT, "Seats", line.quantity, amount, zero, START, END,
                      contract_line_id=line.line_id),), amount, zero, amount)


def body(event: AnyEvent, source_event_id: str, correlation_id: str,
         source: str = "billing") -> bytes:
    draft = DraftEnvelope(event, source, source_event_id, datetime(2026, 1, 1, tzinfo=UTC),
                          correlation_id)
    return json.dumps(codec.draft_to_json(draft)).encode()


def booked(signed: SubscriptionContract) -> list[bytes]:
    """The contract and its invoice as two raw canonical bodies."""
    return [body(ContractCreated(signed), f"{signed.id}-created", signed.id),
            body(InvoiceIssued(invoice(signed)), f"{signed.id}-invoice", signed.id)]
