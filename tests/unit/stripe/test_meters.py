"""Stripe Billing meter events (current API shape, from Stripe's own examples) read as
finsync's usage: the meter by event name, the customer and the value by the meter's payload
keys, the subscription item on the meter's price that ran at the event's time.

Pure: the meters and subscriptions are Stripe objects given to the index; how the usage
source reads them from Stripe (and when again) is `test_meter_source.py`."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from finsync.connectors.stripe.meters import MeterIndex, summary_item, usage_item
from finsync.domain import meter as domain_meter
from finsync.domain.errors import MappingError
from finsync.domain.limits import InputLimits
from tests.stripeshapes import DAY, RESOURCES, T0, example, shaped
from tests.stripeshapes.meters import (
    CUSTOMER,
    METER,
    meter,
    meter_event,
    metered_price,
    subscription,
    summary,
)

SEATS = shaped("price", id="price_seats", product="prod_platform_seat")  # licensed: no meter
USAGE = subscription("sub_usage", [("si_seats", SEATS), ("si_calls", metered_price())])


def index(*subs: dict[str, Any], meters: list[dict[str, Any]] | None = None) -> MeterIndex:
    return MeterIndex.of(meters if meters is not None else [meter()], list(subs) or [USAGE])


def test_stripes_own_example_event_is_usage_on_the_metered_item() -> None:
    # Stripe's example: event_name api_request, identifier 1234-1234, customer cus_123,
    # value "25" (a string), at 1234567890 = 2009-02-13T23:31:30Z.
    event = example("billing.meter_event")
    started = subscription("sub_usage", [("si_calls", metered_price())], start=1_200_000_000)
    item = usage_item(event, index(started))
    assert item == {"id": "1234-1234", "subscription": "sub_usage",
                    "product": "prod_usage_overage", "quantity": 25,
                    "timestamp": "2009-02-13T23:31:30+00:00"}
    # ... which is finsync's meter event, checked like any other
    read = domain_meter.read_items([item], InputLimits(), date(2026, 12, 1))
    assert read.events[0].usage_day == date(2009, 2, 13) and read.events[0].quantity == 25


def test_the_meters_own_payload_keys_name_the_customer_and_the_value() -> None:
    custom = meter(customer_key="account", value_key="calls")
    event = meter_event("evt_a", "", payload={"account": CUSTOMER, "calls": "1400000"})
    assert usage_item(event, index(meters=[custom]))["quantity"] == 1_400_000
    # the default keys are not read when the meter names others
    with pytest.raises(MappingError) as caught:
        usage_item(meter_event("evt_b", "7"), index(meters=[custom]))
    assert caught.value.code == "missing_field"


def test_the_examples_default_keys_are_stripes_defaults() -> None:
    assert RESOURCES["billing.meter"]["customer_mapping"]["event_payload_key"] == "customer"
    # Stripe's meter example maps `customer`: an event that says stripe_customer_id is not
    # read for that meter (the key the meter names wins)
    with pytest.raises(MappingError) as caught:
        usage_item(meter_event("evt_c", "1", event_name="test-meter-event-name"),
                   MeterIndex.of([example("billing.meter")], [USAGE]))
    assert caught.value.code == "missing_field"


@pytest.mark.parametrize(("value", "quantity"), [("0", 0), ("25", 25), (25, 25), (25.0, 25)])
def test_a_whole_number_of_units_is_taken_as_stripe_sends_it(value: Any, quantity: int) -> None:
    event = meter_event("evt_w", "")
    event["payload"]["value"] = value
    assert usage_item(event, index())["quantity"] == quantity


@pytest.mark.parametrize("value", ["2.5", "-1", "1e3", " 7", "", "0x10", True, None, 2.5, -3])
def test_a_value_finsync_cannot_total_in_whole_units_is_refused(value: Any) -> None:
    event = meter_event("evt_v", "")
    event["payload"]["value"] = value
    with pytest.raises(MappingError) as caught:
        usage_item(event, index())
    assert caught.value.code in {"invalid_quantity", "missing_field"}


@pytest.mark.parametrize(("change", "code"), [
    ({"event_name": "no_such_meter"}, "unknown_meter"),
    ({"identifier": None}, "missing_field"),
    ({"timestamp": None}, "missing_field"),
    ({"timestamp": "2026-01-01T00:00:00Z"}, "invalid_field"),
    ({"timestamp": 10 ** 15}, "date_out_of_range"),
    ({"payload": {"value": "3"}}, "missing_field"),
])
def test_a_meter_event_finsync_cannot_read_is_refused_with_its_code(change: dict[str, Any],
                                                                   code: str) -> None:
    event = {**meter_event("evt_r", "3"), **change}
    with pytest.raises(MappingError) as caught:
        usage_item(event, index())
    assert caught.value.code == code


def test_an_inactive_meter_takes_no_event() -> None:
    with pytest.raises(MappingError) as caught:
        usage_item(meter_event("evt_i", "3"), index(meters=[meter(status="inactive")]))
    assert caught.value.code == "meter_inactive"


def test_the_item_is_the_one_that_ran_at_the_events_time() -> None:
    # sub_old ran [T0-40d, T0-10d), sub_new from T0-10d: an event on T0-20d is sub_old's,
    # one on T0 sub_new's, one before either started no one's.
    old = subscription("sub_old", [("si_old", metered_price())], ended_at=T0 - 10 * DAY)
    new = subscription("sub_new", [("si_new", metered_price())], start=T0 - 10 * DAY)
    both = index(old, new)
    assert usage_item(meter_event("e1", "1", timestamp=T0 - 20 * DAY), both)["subscription"] \
        == "sub_old"
    assert usage_item(meter_event("e2", "1"), both)["subscription"] == "sub_new"
    with pytest.raises(MappingError) as caught:
        usage_item(meter_event("e3", "1", timestamp=T0 - 50 * DAY), both)
    assert caught.value.code == "no_subscription_item"


def test_another_customers_item_is_not_this_customers() -> None:
    theirs = subscription("sub_x", [("si_x", metered_price())], customer="cus_other")
    with pytest.raises(MappingError) as caught:
        usage_item(meter_event("e4", "1"), index(theirs))
    assert caught.value.code == "no_subscription_item"


def test_two_running_items_on_one_meter_are_not_chosen_between() -> None:
    second = subscription("sub_two", [("si_two", metered_price("price_other"))])
    with pytest.raises(MappingError) as caught:
        usage_item(meter_event("e5", "1"), index(USAGE, second))
    assert caught.value.code == "ambiguous_subscription_item"
    assert "si_calls, si_two" in str(caught.value)


def test_a_daily_summary_is_one_item_of_its_day_with_a_stable_id() -> None:
    day = int(datetime(2026, 11, 3, tzinfo=UTC).timestamp())
    item = summary_item(summary(1_800_000, day), CUSTOMER, index())
    assert item == {"id": f"mtrsum:{METER}:{CUSTOMER}:{day}", "subscription": "sub_usage",
                    "product": "prod_usage_overage", "quantity": 1_800_000,
                    "timestamp": "2026-11-03T00:00:00+00:00"}
    assert summary_item(summary(1_800_000, day), CUSTOMER, index())["id"] == item["id"]
    with pytest.raises(MappingError) as caught:
        summary_item(summary(12.5, day), CUSTOMER, index())  # a decimal aggregate
    assert caught.value.code == "invalid_quantity"


def test_a_batch_keeps_the_good_events_and_refuses_the_others_alone() -> None:
    # three events of one customer on one day: 900,000 + 2,100,000 = 3,000,000 kept;
    # the decimal one (index 1) and the unknown meter (index 3) refused by themselves.
    items = [meter_event("a", "900000"), meter_event("b", "0.5"), meter_event("c", "2100000"),
             meter_event("d", "1", event_name="tokens")]
    batch = domain_meter.read_items(items, InputLimits(), date(2026, 12, 1),
                                    lambda item: usage_item(item, index()))
    assert [e.id for e in batch.events] == ["a", "c"]
    assert sum(e.quantity for e in batch.events) == 3_000_000
    assert [(r.index, r.event_id, r.code) for r in batch.refused] == [
        (1, "b", "invalid_quantity"), (3, "d", "unknown_meter")]
