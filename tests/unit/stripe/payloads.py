"""Stripe objects and events written by hand in the CURRENT API shape as documented at
docs.stripe.com/api (2025 "basil" and later: invoice `parent`, line `pricing` and `taxes`,
subscription items with their own billing period), plus helpers to wrap them."""

from __future__ import annotations

import json
from typing import Any

T0 = 1_795_810_008  # 2026-11-27
DAY = 86_400


def event(kind: str, obj: dict[str, Any], *, evt: str = "evt_1", created: int = T0,
          previous: dict[str, Any] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"object": obj}
    if previous is not None:
        data["previous_attributes"] = previous
    return {"id": evt, "object": "event", "api_version": "2025-03-31.basil",
            "created": created, "type": kind, "data": data, "livemode": False,
            "pending_webhooks": 1, "request": {"id": "req_1", "idempotency_key": None}}


def body(value: dict[str, Any]) -> bytes:
    return json.dumps(value).encode()


def delivered(evt: dict[str, Any], *, current: dict[str, Any] | None = None,
              version: int | None = None, related: dict[str, Any] | None = None) -> bytes:
    wrapped = {"object": "finsync.stripe_delivery", "event": evt, "current": current,
               "version": version}
    return body(wrapped | {"related": related} if related else wrapped)


def price(price_id: str, product: str, unit_amount: int, *, interval: str = "month",
          currency: str = "usd") -> dict[str, Any]:
    return {"id": price_id, "object": "price", "product": product, "currency": currency,
            "unit_amount": unit_amount, "unit_amount_decimal": str(unit_amount),
            "billing_scheme": "per_unit", "type": "recurring",
            "recurring": {"interval": interval, "interval_count": 1, "usage_type": "licensed"}}


def subscription(items: list[tuple[str, dict[str, Any], int]], *, sub: str = "sub_1",
                 status: str = "active", ended_at: int | None = None) -> dict[str, Any]:
    return {"id": sub, "object": "subscription", "customer": "cus_1", "currency": "usd",
            "status": status, "start_date": T0, "created": T0, "ended_at": ended_at,
            "cancel_at": None, "canceled_at": ended_at,
            "items": {"object": "list", "has_more": False, "data": [
                {"id": item_id, "object": "subscription_item", "price": p, "quantity": qty,
                 "current_period_start": T0, "current_period_end": T0 + 30 * DAY}
                for item_id, p, qty in items]}}


def line(line_id: str, amount: int, *, product: str = "prod_seats", quantity: int = 1,
         proration: bool = False, discount: int = 0, tax: int = 0,
         tax_behavior: str = "exclusive", start: int = T0,
         end: int = T0 + 30 * DAY) -> dict[str, Any]:
    return {
        "id": line_id, "object": "line_item", "amount": amount, "currency": "usd",
        "description": f"{quantity} x {product}", "quantity": quantity,
        "period": {"start": start, "end": end},
        "pricing": {"type": "price_details",
                    "price_details": {"price": f"price_{product}", "product": product},
                    "unit_amount_decimal": str(amount // max(quantity, 1))},
        "parent": {"type": "subscription_item_details",
                   "subscription_item_details": {"subscription": "sub_1",
                                                 "subscription_item": "si_1",
                                                 "proration": proration}},
        "discount_amounts": [{"amount": discount, "discount": "di_1"}] if discount else [],
        "taxes": [{"amount": tax, "tax_behavior": tax_behavior, "type": "tax_rate_details",
                   "taxability_reason": "standard_rated", "taxable_amount": amount}]
        if tax else [],
    }


def invoice(lines: list[dict[str, Any]], total: int, *, inv: str = "in_1",
            status: str = "paid", paid: int | None = None,
            currency: str = "usd", has_more: bool = False) -> dict[str, Any]:
    return {
        "id": inv, "object": "invoice", "number": "ACME-0001", "customer": "cus_1",
        "currency": currency, "status": status, "created": T0, "due_date": None,
        "total": total, "amount_paid": total if paid is None else paid,
        "status_transitions": {"finalized_at": T0, "paid_at": T0 + 60},
        "parent": {"type": "subscription_details",
                   "subscription_details": {"subscription": "sub_1", "metadata": {}}},
        "lines": {"object": "list", "has_more": has_more, "data": lines,
                  "url": f"/v1/invoices/{inv}/lines"},
        "payments": {"object": "list", "has_more": False, "data": [
            {"id": "inpay_1", "object": "invoice_payment", "amount_paid": total,
             "payment": {"type": "payment_intent", "payment_intent": "pi_1"}}]},
    }
