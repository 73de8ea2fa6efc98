"""Stripe Billing meters in the current API shape: meters, meter events, daily summaries and
subscriptions whose item's price is on a meter, each from Stripe's own example."""

from __future__ import annotations

from tests.stripeshapes import T0, Obj, listing, shaped

CUSTOMER = "cus_123"  # Stripe's meter event example names this customer
METER = "meter_123"  # Stripe's meter example's id
EVENT_NAME = "api_request"  # Stripe's meter event example's event name


def meter(meter_id: str = METER, event_name: str = EVENT_NAME, *,
          customer_key: str = "stripe_customer_id", value_key: str = "value",
          status: str = "active") -> Obj:
    """A meter; its payload keys default to Stripe's defaults (Stripe's example maps
    `customer` instead)."""
    return shaped("billing.meter", id=meter_id, event_name=event_name, status=status,
                  customer_mapping={"event_payload_key": customer_key, "type": "by_id"},
                  value_settings={"event_payload_key": value_key})


def meter_event(identifier: str, value: str, *, customer: str = CUSTOMER,
                event_name: str = EVENT_NAME, timestamp: int = T0,
                payload: Obj | None = None) -> Obj:
    """A meter event as Stripe takes it and answers it (`billing.meter_event`)."""
    obj = shaped("billing.meter_event", identifier=identifier, event_name=event_name,
                 payload={"stripe_customer_id": customer, "value": value},
                 timestamp=timestamp, created=timestamp)
    if payload is not None:
        obj["payload"] = payload  # free-form at Stripe ({key: string}): the meter names keys
    return obj


def summary(value: int | float, start: int, *, meter_id: str = METER) -> Obj:
    """One day of a meter's usage for one customer (`billing.meter_event_summary`)."""
    return shaped("billing.meter_event_summary", id=f"mtrusg_{start}", meter=meter_id,
                  aggregated_value=value, start_time=start, end_time=start + 86_400)


def metered_price(price_id: str = "price_api_calls", product: str = "prod_usage_overage",
                  meter_id: str = METER) -> Obj:
    """A monthly price billed by a meter (`recurring.usage_type` metered)."""
    return shaped("price", id=price_id, product=product, unit_amount=None,
                  unit_amount_decimal="0.2",
                  recurring={"interval": "month", "interval_count": 1, "meter": meter_id,
                             "trial_period_days": None, "usage_type": "metered"})


def subscription(sub_id: str, items: list[tuple[str, Obj]], *, customer: str = CUSTOMER,
                 start: int = T0 - 40 * 86_400, ended_at: int | None = None) -> Obj:
    """A subscription of `customer` with `(item id, price)` items (metered items carry no
    quantity)."""
    data = [shaped("subscription_item", id=item_id, price=price, subscription=sub_id,
                   current_period_start=start, current_period_end=start + 30 * 86_400)
            for item_id, price in items]
    return shaped("subscription", id=sub_id, customer=customer, start_date=start,
                  created=start, billing_cycle_anchor=start, ended_at=ended_at,
                  status="canceled" if ended_at else "active",
                  items=listing(data, f"/v1/subscription_items?subscription={sub_id}"))
