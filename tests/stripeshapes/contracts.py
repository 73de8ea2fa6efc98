"""Subscriptions in the CURRENT shape, from Stripe's own examples: prices (`price`),
subscription items with their own billing period (`subscription_item`) and subscriptions
(`subscription`)."""

from __future__ import annotations

from typing import Any

from tests.stripeshapes import DAY, T0, Obj, listing, shaped

YEAR = 365 * DAY


def price(price_id: str, product: str, unit_amount: int, *, currency: str = "usd",
          interval: str = "year") -> Obj:
    """A per-unit recurring price of `unit_amount` minor units per `interval`."""
    return shaped("price", id=price_id, product=product, currency=currency,
                  unit_amount=unit_amount, unit_amount_decimal=str(unit_amount),
                  recurring={"interval": interval, "interval_count": 1, "meter": None,
                             "trial_period_days": None, "usage_type": "licensed"})


def item(item_id: str, sold: Obj, quantity: int, *, sub: str = "sub_1", start: int = T0,
         end: int = T0 + YEAR) -> Obj:
    """A subscription item at `sold` (a `price`); the deprecated `plan` left out."""
    return shaped("subscription_item", id=item_id, price=sold, plan=None, quantity=quantity,
                  subscription=sub, current_period_start=start, current_period_end=end)


def subscription(items: list[Obj], *, sub: str = "sub_1", customer: str = "cus_1",
                 currency: str = "usd", start: int = T0, **fields: Any) -> Obj:
    """An active subscription started at `start`, its term its items' current period, billed
    on cycles anchored on its start unless `billing_cycle_anchor` says otherwise."""
    return shaped("subscription", id=sub, customer=customer, currency=currency,
                  items=listing(items, f"/v1/subscription_items?subscription={sub}"),
                  start_date=start, created=start,
                  billing_cycle_anchor=fields.pop("billing_cycle_anchor", start),
                  ended_at=None, cancel_at=None,
                  canceled_at=None, cancel_at_period_end=False, status="active", **fields)
