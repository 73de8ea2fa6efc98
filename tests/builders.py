"""Canonical events for tests, written in the domain's own words."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

T0 = datetime.fromisoformat("2026-01-01T09:00:00+00:00")


def envelope(type_: str, source_event_id: str, aggregate: tuple[str, str, int | None],
             payload: dict[str, Any], *, correlation_id: str, source: str = "billing",
             at: datetime = T0, causation_id: str | None = None,
             business_key: str | None = None) -> dict[str, Any]:
    return {
        "type": type_, "schema_version": 2 if type_ == "invoice.issued" else 1,
        "source": source, "source_event_id": source_event_id,
        "occurred_at": at.isoformat(), "correlation_id": correlation_id,
        "causation_id": causation_id, "business_key": business_key,
        "aggregate": {"type": aggregate[0], "id": aggregate[1], "version": aggregate[2]},
        "payload": payload,
    }


def contract_doc(contract_id: str, version: int, seats: int, unit_price: str,
                 customer: str = "cus_1") -> dict[str, Any]:
    return {
        "id": contract_id, "customer_id": customer, "legal_entity": "le_us", "currency": "USD",
        "start_date": "2026-01-01", "end_date": "2027-01-01", "billing_frequency": "annual",
        "version": version,
        "lines": [{"line_id": "ln_seats", "product_id": "prod_seat", "price_id": "price_seat",
                   "quantity": seats, "unit_price": unit_price, "start_date": "2026-01-01",
                   "end_date": "2027-01-01"}],
    }


def seats_amendment(seats: int) -> dict[str, Any]:
    """con_1 v2 (amd_1, effective 2026-03-01): the seats go from 10 to `seats`."""
    return envelope(
        "contract.amended", "con-v2", ("subscription_contract", "con_1", 2),
        {"amendment": {"id": "amd_1", "contract_id": "con_1", "version": 2,
                       "effective_date": "2026-03-01", "reason": "upgrade",
                       "changes": [{"op": "quantity", "line_id": "ln_seats", "before": "10",
                                    "after": str(seats)}],
                       "contract": contract_doc("con_1", 2, seats, "120.00")}},
        correlation_id="amd_1")


def invoice_doc(invoice_id: str, amount: str, contract_id: str | None = None,
                customer: str = "cus_1", version: int | None = None) -> dict[str, Any]:
    return {
        "id": invoice_id, "number": invoice_id.upper(), "customer_id": customer,
        "contract_id": contract_id, "contract_version": version, "legal_entity": "le_us",
        "currency": "USD", "issue_date": "2026-01-01", "due_date": "2026-01-31",
        "lines": [{"line_id": "l1", "product_id": "prod_seat", "description": "Seats",
                   "quantity": 1, "amount": amount, "tax_amount": "0.00",
                   "service_start": "2026-01-01", "service_end": "2027-01-01"}],
        "subtotal": amount, "tax_total": "0.00", "total": amount,
    }


def payment_doc(payment_id: str, amount: str, invoice_id: str,
                customer: str = "cus_1") -> dict[str, Any]:
    return {"id": payment_id, "customer_id": customer, "legal_entity": "le_us",
            "currency": "USD", "amount": amount, "received_on": "2026-01-15",
            "applications": [{"invoice_id": invoice_id, "amount": amount}]}


@dataclass
class Stream:
    """A small life of several customers: contracts with amendments, invoices, payments."""

    events: list[dict[str, Any]] = field(default_factory=list)

    def lines(self) -> list[bytes]:
        return [json.dumps(e).encode() for e in self.events]


def lifecycle_stream(customers: int = 3, amendments: int = 2, first: int = 0) -> Stream:
    stream = Stream()
    for c in range(first, first + customers):
        cus, con = f"cus_{c}", f"con_{c}"
        at = T0 + timedelta(days=c)
        for version in range(1, amendments + 2):
            seats = 100 * version
            corr = f"{con}-v{version}"
            doc = contract_doc(con, version, seats, "120.00", cus)
            if version == 1:
                stream.events.append(envelope("contract.created", f"{con}-created",
                                              ("subscription_contract", con, 1),
                                              {"contract": doc}, correlation_id=corr, at=at))
            else:
                amendment = {"id": f"amd_{c}_{version}", "contract_id": con, "version": version,
                             "effective_date": "2026-05-16", "reason": "upgrade",
                             "changes": [{"op": "set_quantity", "line_id": "ln_seats",
                                          "before": str(seats - 100), "after": str(seats)}],
                             "contract": doc}
                stream.events.append(envelope("contract.amended", f"{con}-v{version}",
                                              ("subscription_contract", con, version),
                                              {"amendment": amendment}, correlation_id=corr,
                                              at=at + timedelta(hours=version)))
            inv = f"inv_{c}_{version}"
            amount = str(Decimal(seats) * Decimal("10.00"))
            stream.events.append(envelope("invoice.issued", f"{inv}-issued", ("invoice", inv, 1),
                                          {"invoice": invoice_doc(inv, amount, con, cus, version)},
                                          correlation_id=corr, at=at + timedelta(hours=version)))
            pay = f"pay_{c}_{version}"
            stream.events.append(envelope("payment.applied", f"{pay}-applied",
                                          ("payment", pay, None),
                                          {"payment": payment_doc(pay, amount, inv, cus)},
                                          correlation_id=corr,
                                          at=at + timedelta(hours=version, minutes=5)))
    return stream


def day(text: str) -> date:
    return date.fromisoformat(text)
