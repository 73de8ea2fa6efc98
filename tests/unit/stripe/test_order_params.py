"""The subscription platform's requests to Stripe, each checked against the parameters
Stripe publishes for its operation (`tests/stripeshapes/requests.py`)."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from finsync.connectors.ports import Receipt, Reference
from finsync.connectors.stripe import order_params, orders
from finsync.connectors.stripe.order_params import OrderSettings, Request
from finsync.domain.catalog import BillingFrequency
from finsync.domain.commercial import CommercialKind, ProrationTerms, SubscriptionOrder
from finsync.domain.errors import ExceptionClass, PermanentError
from finsync.domain.money import Money
from finsync.domain.proration import add_months
from tests.stripeshapes import T0, listing
from tests.stripeshapes.contracts import YEAR, item, price, subscription
from tests.stripeshapes.requests import RequestShapeError, check, decode
from tests.unit.stripe.orderkit import (
    ANALYTICS_PRICE,
    END,
    SETTINGS,
    START,
    UPGRADE,
    customer,
    new_order,
    upgrade,
    usd,
)


def published(request: Request) -> dict[str, object]:
    check(request.method, request.path, request.params)
    return decode(request.params)


def seat_subscription(quantity: int = 500, *, tagged: bool = True) -> dict[str, object]:
    seat_item = item("si_seats", price("price_seat_annual", "prod_seat", 12_000), quantity)
    if tagged:
        seat_item["metadata"] = {"finsync_line_id": "ql-seats", "finsync_contract_id": "ctr-1"}
    return subscription([seat_item], sub="sub_1", customer="cus_1",
                        metadata={"finsync_contract_id": "ctr-1", "finsync_quote_id": "q-1",
                                  "finsync_cpq_version": "1"})


# -- new ---------------------------------------------------------------------------------

def test_new_order_creates_the_subscription_at_the_mapped_price() -> None:
    sent = published(order_params.create(new_order(), "cus_1", SETTINGS, START))
    assert sent["customer"] == "cus_1"
    assert sent["items"] == {"0": {"price": "price_seat_annual", "quantity": "500",
                                   "metadata": {"finsync_line_id": "ql-seats",
                                                "finsync_contract_id": "ctr-1"}}}
    assert sent["metadata"] == {"finsync_contract_id": "ctr-1", "finsync_quote_id": "q-1",
                                "finsync_customer_id": "acct-acme", "finsync_cpq_version": "1"}
    assert "backdate_start_date" not in sent  # starts today


def test_new_order_started_before_today_is_backdated_and_anchored_on_its_start() -> None:
    # started 1 January 2026, created 15 May: backdated to 1 Jan, cycles anchored on the
    # next anniversary (1 January 2027 = 1798761600), so the first invoice is the year.
    sent = published(order_params.create(new_order(), "cus_1", SETTINGS, UPGRADE))
    assert sent["backdate_start_date"] == "1767225600"  # 2026-01-01 00:00 UTC
    assert sent["billing_cycle_anchor"] == "1798761600"  # 2027-01-01 00:00 UTC
    assert sent["proration_behavior"] == "create_prorations"


def test_new_order_that_does_not_renew_cancels_at_its_end() -> None:
    order = dataclasses.replace(new_order(), auto_renew=False)
    sent = published(order_params.create(order, "cus_1", SETTINGS, START))
    assert sent["cancel_at"] == str(order_params.instant(END))


def test_plan_parameter_names_the_price_as_a_plan() -> None:
    settings = OrderSettings(dict(SETTINGS.prices), "plan")
    sent = published(order_params.create(new_order(), "cus_1", settings, START))
    assert sent["items"]["0"]["plan"] == "price_seat_annual"  # type: ignore[index]


def test_a_later_start_needs_a_schedule_and_is_refused() -> None:
    with pytest.raises(PermanentError) as refused:
        order_params.create(new_order(), "cus_1", SETTINGS, date(2025, 12, 31))
    assert refused.value.exception_class is ExceptionClass.MASTER_DATA_MISMATCH
    assert refused.value.code == "subscription_schedule"


def test_a_ramp_is_refused_naming_its_line() -> None:
    from finsync.domain.contract import RampStep

    line = dataclasses.replace(new_order().lines[0], ramp=(
        RampStep(date(2026, 7, 1), 600, Money(new_order().lines[0].unit_price.amount, "USD")),))
    order = dataclasses.replace(new_order(), lines=(line,))
    with pytest.raises(PermanentError, match="line ql-seats: a ramp"):
        order_params.create(order, "cus_1", SETTINGS, START)


# -- amendment -----------------------------------------------------------------------------

@pytest.mark.parametrize(("terms", "behavior"), [
    (ProrationTerms.INVOICE_NOW, "always_invoice"),
    (ProrationTerms.NEXT_INVOICE, "create_prorations"),
    (ProrationTerms.NONE, "none"),
])
def test_upgrade_changes_the_seats_and_adds_analytics_under_the_terms(
        terms: ProrationTerms, behavior: str) -> None:
    sent = published(order_params.change(upgrade(terms), seat_subscription(), SETTINGS,
                                         UPGRADE))
    assert sent["items"] == {
        "0": {"id": "si_seats", "quantity": "800"},
        "1": {"price": "price_analytics_annual", "quantity": "1",
              "metadata": {"finsync_line_id": "ql-analytics",
                           "finsync_contract_id": "ctr-1"}}}
    assert sent["proration_behavior"] == behavior
    assert "proration_date" not in sent  # effective today
    assert sent["metadata"] == {"finsync_contract_id": "ctr-1", "finsync_quote_id": "q-2",
                                "finsync_customer_id": "acct-acme", "finsync_cpq_version": "2"}


def test_upgrade_applied_after_its_effective_date_prorates_from_it() -> None:
    sent = published(order_params.change(upgrade(), seat_subscription(), SETTINGS,
                                         date(2026, 5, 20)))
    assert sent["proration_date"] == "1778803200"  # 2026-05-15 00:00 UTC


def test_untagged_item_is_matched_by_its_price_and_tagged() -> None:
    # a subscription made at Stripe before the commercial layer (the stack demo's)
    sent = published(order_params.change(upgrade(), seat_subscription(tagged=False),
                                         SETTINGS, UPGRADE))
    assert sent["items"]["0"] == {  # type: ignore[index]
        "id": "si_seats", "quantity": "800",
        "metadata": {"finsync_line_id": "ql-seats", "finsync_contract_id": "ctr-1"}}


def test_removed_line_deletes_its_item_and_a_price_change_names_the_new_price() -> None:
    before = seat_subscription()
    items = before["items"]["data"]  # type: ignore[index]
    items.append(dict(item("si_analytics", price("price_analytics_annual", "prod_an",
                                                  2_400_000), 1),
                      metadata={"finsync_line_id": "ql-analytics"}))
    repriced = dataclasses.replace(upgrade().lines[0], price_id=ANALYTICS_PRICE, quantity=3)
    order = dataclasses.replace(upgrade(), lines=(repriced,))
    sent = published(order_params.change(order, before, SETTINGS, UPGRADE))
    assert sent["items"] == {
        "0": {"id": "si_seats", "price": "price_analytics_annual", "quantity": "3"},
        "1": {"id": "si_analytics", "deleted": "true"}}


def test_renewal_reprices_for_the_next_term_without_proration() -> None:
    renewal = dataclasses.replace(upgrade(), kind=CommercialKind.RENEWAL, id="q-3",
                                  cpq_version=3, lines=(new_order(550).lines[0],))
    sent = published(order_params.change(renewal, seat_subscription(), SETTINGS, UPGRADE))
    assert sent["proration_behavior"] == "none"
    assert sent["items"] == {"0": {"id": "si_seats", "quantity": "550"}}


def renewal(start: date = END) -> SubscriptionOrder:
    """The renewal for 2027 of 500 seats at 120.00 with a 7 % uplift: 128.40 a seat-year,
    a Stripe price of its own (`price_seat_2027`, which the catalogue does not map)."""
    seat = dataclasses.replace(new_order().lines[0], unit_price=usd("128.40"),
                               price_id="price_seat_2027",
                               start_date=start, end_date=add_months(start, 12))
    return dataclasses.replace(new_order(), id="q-3", kind=CommercialKind.RENEWAL,
                               cpq_version=3, start_date=start, end_date=seat.end_date,
                               effective_date=start, lines=(seat,))


def periods_ending(sub: dict[str, object], end: date) -> dict[str, object]:
    sub["items"] = listing([dict(sub["items"]["data"][0],  # type: ignore[index]
                                 current_period_end=order_params.instant(end))])
    return sub


def test_renewal_approved_early_is_sent_when_the_period_ends_at_the_renewal() -> None:
    # billed annually: the period ends 1 January 2027, when the renewal starts; the
    # update (no proration) changes nothing invoiced before then, and Stripe's invoice of
    # 1 January bills 500 x 128.40 = 64,200.00 for 2027.
    sub = periods_ending(seat_subscription(), END)
    sent = published(order_params.change(renewal(), sub, SETTINGS, date(2026, 10, 1)))
    assert sent["proration_behavior"] == "none"
    assert sent["items"] == {"0": {"id": "si_seats", "price": "price_seat_2027",
                                   "quantity": "500"}}


def test_renewal_approved_early_of_a_term_billed_monthly_is_refused() -> None:
    # the 2026 term billed monthly, the renewal approved on 1 October: the current period
    # ends 1 November, so an update now would bill November and December (2 x 500 x
    # 10.70 = 10,700.00) at the renewal's price instead of 2 x 500 x 10.00 = 10,000.00.
    monthly = dataclasses.replace(renewal(), billing_frequency=BillingFrequency.MONTHLY)
    sub = periods_ending(seat_subscription(), date(2026, 11, 1))
    with pytest.raises(PermanentError) as refused:
        order_params.change(monthly, sub, SETTINGS, date(2026, 10, 1))
    assert refused.value.exception_class is ExceptionClass.MASTER_DATA_MISMATCH
    assert refused.value.code == "subscription_schedule"
    assert "renews on 2027-01-01" in str(refused.value)
    assert "period ends on 2026-11-01" in str(refused.value)


def test_renewal_after_today_without_a_period_end_or_on_two_is_refused() -> None:
    bare = seat_subscription()
    bare["items"]["data"][0].pop("current_period_end")  # type: ignore[index]
    with pytest.raises(PermanentError, match="no date Stripe gives"):
        order_params.change(renewal(), bare, SETTINGS, date(2026, 10, 1))
    split = periods_ending(seat_subscription(), END)
    split["current_period_end"] = order_params.instant(date(2026, 11, 1))
    with pytest.raises(PermanentError, match="2026-11-01, 2027-01-01"):
        order_params.change(renewal(), split, SETTINGS, date(2026, 10, 1))


def test_renewal_starting_today_is_sent() -> None:
    sub = periods_ending(seat_subscription(), date(2027, 2, 1))
    published(order_params.change(renewal(), sub, SETTINGS, END))


def test_order_that_stops_renewing_cancels_at_period_end() -> None:
    order = dataclasses.replace(upgrade(), auto_renew=False)
    sent = published(order_params.change(order, seat_subscription(), SETTINGS, UPGRADE))
    assert sent["cancel_at_period_end"] == "true"


# -- cancellation ----------------------------------------------------------------------------

def cancellation(effective: date, terms: ProrationTerms = ProrationTerms.INVOICE_NOW):
    return dataclasses.replace(new_order(), id="q-9", kind=CommercialKind.CANCELLATION,
                               cpq_version=9, effective_date=effective, proration=terms)


def test_cancellation_at_the_period_end_is_cancel_at_period_end() -> None:
    sub = seat_subscription()
    sub["items"] = listing([dict(sub["items"]["data"][0],  # type: ignore[index]
                                 current_period_end=order_params.instant(END))])
    request = order_params.cancel(cancellation(END), sub, UPGRADE)
    assert (request.method, published(request)["cancel_at_period_end"]) == ("POST", "true")


@pytest.mark.parametrize("terms", list(ProrationTerms))
def test_cancellation_before_today_is_refused_not_cancelled_now(terms: ProrationTerms) -> None:
    # CPQ cancels on 15 May, the order reaches Stripe on 20 May: a DELETE now would bill
    # 15-20 May against CPQ's terms; Stripe cannot date a cancellation back.
    with pytest.raises(PermanentError) as refused:
        order_params.cancel(cancellation(UPGRADE, terms), seat_subscription(),
                            date(2026, 5, 20))
    assert refused.value.exception_class is ExceptionClass.MASTER_DATA_MISMATCH
    assert refused.value.code == "backdated_cancellation"
    assert "cancels on 2026-05-15, before today (2026-05-20)" in str(refused.value)


@pytest.mark.parametrize(("terms", "prorate", "invoice_now"), [
    (ProrationTerms.INVOICE_NOW, "true", "true"),
    (ProrationTerms.NEXT_INVOICE, "true", "false"),
    (ProrationTerms.NONE, "false", "false"),
])
def test_cancellation_today_cancels_now_as_the_terms_say(
        terms: ProrationTerms, prorate: str, invoice_now: str) -> None:
    request = order_params.cancel(cancellation(UPGRADE, terms), seat_subscription(), UPGRADE)
    assert request.method == "DELETE"
    assert published(request) == {"prorate": prorate, "invoice_now": invoice_now}


def test_cancellation_later_in_the_period_is_cancel_at() -> None:
    sub = seat_subscription()
    sub["items"] = listing([dict(sub["items"]["data"][0],  # type: ignore[index]
                                 current_period_start=T0, current_period_end=T0 + YEAR)])
    later = date(2026, 12, 1)
    sent = published(order_params.cancel(cancellation(later), sub, UPGRADE))
    assert sent["cancel_at"] == str(order_params.instant(later))
    assert sent["proration_behavior"] == "always_invoice"


# -- customers -------------------------------------------------------------------------------

def test_customer_is_created_with_its_name_address_and_canonical_id() -> None:
    sent = published(order_params.customer_create(customer()))
    assert sent["name"] == "Acme Analytics Customer Ltd"
    assert sent["address"] == {"line1": "1 Main Street", "line2": "Floor 4",
                               "city": "New York", "postal_code": "10001", "country": "US",
                               "state": "NY"}
    assert sent["metadata"] == {"finsync_customer_id": "acct-acme",
                                "finsync_customer_version": "1"}
    assert "tax_id_data" not in sent  # no VAT id


def test_eu_customer_sends_its_vat_id() -> None:
    sent = published(order_params.customer_create(customer(country="DE")))
    assert sent["tax_id_data"] == {"0": {"type": "eu_vat", "value": "DE123456789"}}
    added = order_params.tax_id_add(customer(country="DE"), "cus_1", [])
    assert added is not None and published(added) == {"type": "eu_vat",
                                                      "value": "DE123456789"}
    assert order_params.tax_id_add(customer(country="DE"), "cus_1",
                                   [{"value": "DE123456789"}]) is None


def test_customer_update_is_published_shape() -> None:
    published(order_params.customer_update(customer("Acme Renamed", 2), "cus_1"))


# -- keys and the checker itself ----------------------------------------------------------------

def test_idempotency_key_follows_the_order_step_and_request() -> None:
    first = order_params.create(new_order(), "cus_1", SETTINGS, START)
    again = order_params.create(new_order(), "cus_1", SETTINGS, START)
    remapped = order_params.create(new_order(), "cus_1", OrderSettings(), START)
    assert first.key("q-1") == again.key("q-1")
    assert first.key("q-1").startswith("finsync-create-q-1-")
    assert remapped.key("q-1") != first.key("q-1")
    assert len(first.key("q" * 400)) <= order_params.KEY_MAX


def test_checker_refuses_what_stripe_does_not_take() -> None:
    with pytest.raises(RequestShapeError) as refused:
        check("POST", "/v1/subscriptions/sub_1", [
            ("items[1][id]", "si_1"), ("proration_behavior", "invoice_now"),
            ("prorate", "true"), ("cancel_at_period_end", "yes")])
    text = str(refused.value)
    assert "list indexes [1] skip" in text
    assert "'invoice_now' is not one of" in text
    assert "prorate: no such parameter" in text  # a cancel's parameter, not an update's
    assert "'yes' is not a boolean" in text


def test_what_is_beyond_stripes_limits_is_refused_naming_the_limit() -> None:
    many = tuple(dataclasses.replace(new_order().lines[0], line_id=f"ql-{n}")
                 for n in range(order_params.ITEMS_MAX + 1))
    with pytest.raises(PermanentError, match="21 lines, above the 20 items"):
        order_params.create(dataclasses.replace(new_order(), lines=many), "cus_1", SETTINGS,
                            START)
    long_line = dataclasses.replace(new_order().lines[0], line_id="x" * 501)
    with pytest.raises(PermanentError, match=r"a line id of 501 characters.*500"):
        order_params.create(dataclasses.replace(new_order(), lines=(long_line,)), "cus_1",
                            SETTINGS, START)
    with pytest.raises(PermanentError, match="NAME_MAX"):
        order_params.customer_create(customer("n" * 257))


# -- the port's kept receipts: the writer beside its reader ------------------------------------

_text = st.text(min_size=1, max_size=20)


@given(external=_text, detail=st.dictionaries(_text, _text, max_size=4),
       references=st.lists(st.tuples(_text, _text, _text), max_size=3))
def test_a_kept_receipt_reads_back_as_written(
        external: str, detail: dict[str, str], references: list[tuple[str, str, str]]) -> None:
    receipt = Receipt(external, tuple(Reference(*r) for r in references), detail)
    assert orders.receipt_of(external, orders.detail_json(receipt)) == receipt
