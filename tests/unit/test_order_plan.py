"""The billing command an order becomes (connectors/embedded/order_plan.py), pure: the line
diff as billing's edits, the cancellation's mode, the terms billing cannot express, and the
comparison of an order with a contract version."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import date

import pytest

from finsync.connectors.embedded.order_plan import (
    OrderMismatchError,
    as_cancelled,
    check_order,
    differences,
    ordered_contract,
    plan_amendment,
    plan_cancellation,
    plan_new,
)
from finsync.domain.catalog import BillingFrequency
from finsync.domain.commercial import CommercialKind, ProrationTerms, SubscriptionOrder
from finsync.domain.errors import ExceptionClass
from finsync.systems.billing.cancellation import CancelMode
from finsync.systems.billing.edit import (
    AddProduct,
    AddSeats,
    ChangeBillingFrequency,
    ChangePrice,
    RemoveProduct,
    RemoveSeats,
)
from finsync.systems.billing.state import BillingState, DowngradePolicy, Subscription
from finsync.systems.billing.subscription import create_subscription
from tests.contract.subscription_platform_port import (
    ACME,
    CONTRACT,
    END,
    JULY,
    NEW,
    START,
    UPGRADE,
    UPGRADE_ORDER,
    analytics,
    order,
    seats,
    usage,
    usd,
)
from tests.unit.billing.servicekit import CONFIG

CREDIT_NOW = DowngradePolicy.CREDIT_NOW


def subscription() -> Subscription:
    state = BillingState(CONFIG, customers=(ACME,))
    return create_subscription(state, plan_new(NEW, CONFIG.catalog)).state.subscription(CONTRACT)


def amendment(*lines: object, effective: date = JULY, **terms: object) -> SubscriptionOrder:
    made = order("quote_2", CommercialKind.AMENDMENT, *lines,  # type: ignore[arg-type]
                 version=2, effective=effective)
    return replace(made, **terms)  # type: ignore[arg-type]


def mismatch(code: str) -> AbstractContextManager[pytest.ExceptionInfo[OrderMismatchError]]:
    return pytest.raises(OrderMismatchError, match=f"^{code}:")


def test_a_new_order_is_created_correlated_to_it_with_usage_in_arrears_monthly() -> None:
    command = plan_new(NEW, CONFIG.catalog)
    assert (command.correlation_id, command.auto_renew) == ("quote_new", True)
    assert command.arrears_frequency is BillingFrequency.MONTHLY  # the usage price's
    assert command.contract == ordered_contract(NEW)
    assert plan_new(replace(NEW, lines=(seats(),)), CONFIG.catalog).arrears_frequency is None


def test_the_upgrade_is_seats_added_and_a_cotermed_product() -> None:
    command = plan_amendment(UPGRADE_ORDER, subscription(), CREDIT_NOW)
    assert command is not None
    assert (command.id, command.contract_id, command.effective_date) == (
        "quote_upgrade", CONTRACT, UPGRADE)
    assert command.edits == (AddSeats("ln_seats", 300),
                             AddProduct("ln_analytics", "price_analytics_annual", 1,
                                        usd("24000.00")))


def test_a_line_dropped_or_ended_on_the_effective_date_is_removed() -> None:
    sub = subscription()
    dropped = plan_amendment(amendment(seats(400)), sub, CREDIT_NOW)
    ended = plan_amendment(amendment(seats(400), replace(usage(), end_date=JULY)), sub,
                           CREDIT_NOW)
    assert dropped is not None and ended is not None
    assert dropped.edits == ended.edits == (RemoveProduct("ln_usage"), RemoveSeats("ln_seats", 100))


def test_a_price_and_a_frequency_are_changed() -> None:
    command = plan_amendment(amendment(seats(500, "132.00"), usage(),
                                       billing_frequency=BillingFrequency.QUARTERLY),
                             subscription(), CREDIT_NOW)
    assert command is not None
    assert command.edits == (ChangePrice("ln_seats", usd("132.00")),
                             ChangeBillingFrequency(BillingFrequency.QUARTERLY))


def test_an_order_billing_already_is_plans_nothing_whatever_its_proration() -> None:
    same = amendment(seats(), usage(), proration=ProrationTerms.NONE)
    assert plan_amendment(same, subscription(), CREDIT_NOW) is None


@pytest.mark.parametrize("terms", [ProrationTerms.NEXT_INVOICE, ProrationTerms.NONE])
def test_a_change_under_proration_billing_lacks_is_refused(terms: ProrationTerms) -> None:
    with mismatch("proration_terms") as caught:
        plan_amendment(replace(UPGRADE_ORDER, proration=terms), subscription(), CREDIT_NOW)
    assert caught.value.exception_class is ExceptionClass.MASTER_DATA_MISMATCH


def test_terms_an_amendment_cannot_change_are_named() -> None:
    sub = subscription()
    with mismatch("contract_terms"):
        plan_amendment(amendment(seats(800), usage(), customer_id="cus_other"), sub, CREDIT_NOW)
    with mismatch("contract_terms"):
        plan_amendment(amendment(seats(800), usage(), end_date=date(2027, 3, 1)), sub,
                       CREDIT_NOW)
    with mismatch("auto_renew"):
        plan_amendment(amendment(seats(800), usage(), auto_renew=False), sub, CREDIT_NOW)
    with mismatch("downgrade_at_renewal"):
        plan_amendment(amendment(seats(400), usage()), sub, DowngradePolicy.AT_RENEWAL)


def test_a_line_ended_before_cannot_be_revived() -> None:
    sub = subscription()
    ended = replace(sub, contract=replace(sub.contract, lines=(
        sub.contract.lines[0], replace(sub.contract.lines[1], end_date=UPGRADE))))
    with mismatch("line_ended"):
        plan_amendment(amendment(seats(), usage()), ended, CREDIT_NOW)


def test_cancellation_mode_follows_the_term_end_and_the_proration() -> None:
    sub = subscription()
    at_end = plan_cancellation(order("q", CommercialKind.CANCELLATION, effective=JULY), sub)
    assert (at_end.mode, at_end.id, at_end.effective_date) == (CancelMode.AT_TERM_END, "q", JULY)
    now = order("q", CommercialKind.CANCELLATION, replace(seats(), end_date=JULY),
                effective=JULY, end=JULY)
    assert plan_cancellation(now, sub).mode is CancelMode.IMMEDIATE_WITH_REFUND
    no_refund = replace(now, proration=ProrationTerms.NONE)
    assert plan_cancellation(no_refund, sub).mode is CancelMode.IMMEDIATE_NO_REFUND
    with mismatch("proration_terms"):
        plan_cancellation(replace(now, proration=ProrationTerms.NEXT_INVOICE), sub)
    zeroed = order("q", CommercialKind.CANCELLATION, seats(0), usage(), effective=JULY)
    assert plan_cancellation(zeroed, sub).mode is CancelMode.IMMEDIATE_WITH_REFUND
    with mismatch("cancellation_lines"):
        plan_cancellation(replace(now, lines=(seats(),)), sub)
    with mismatch("contract_terms"):
        plan_cancellation(replace(now, end_date=date(2026, 9, 1)), sub)
    with mismatch("cancellation_lines"):
        plan_cancellation(order("q", CommercialKind.CANCELLATION, seats(600), usage(),
                                effective=JULY), sub)


def test_differences_name_the_terms_and_lines_in_force() -> None:
    contract = ordered_contract(UPGRADE_ORDER)
    assert differences(UPGRADE_ORDER, contract, UPGRADE) == ()
    other = replace(UPGRADE_ORDER, lines=(seats(700), usage(), analytics()),
                    currency="EUR")
    found = differences(other, contract, UPGRADE)
    assert found[0] == "currency: billing USD, order EUR"
    assert found[1].startswith("line ln_seats: billing price_seat_annual x800")
    assert len(found) == 2
    # A line ended on both sides before the comparison's date is history, not a difference.
    history = replace(seats(), line_id="ln_old", end_date=UPGRADE)
    assert differences(replace(UPGRADE_ORDER, lines=(*UPGRADE_ORDER.lines, history)),
                       contract, UPGRADE) == ()
    assert START < UPGRADE < END


def test_an_order_without_ids_or_with_a_line_twice_is_invalid() -> None:
    check_order(UPGRADE_ORDER)
    with mismatch("invalid_order"):
        check_order(replace(UPGRADE_ORDER, id=" "))
    with mismatch("invalid_order"):
        check_order(replace(UPGRADE_ORDER, contract_id=""))
    with mismatch("invalid_order") as caught:
        check_order(replace(UPGRADE_ORDER, lines=(seats(800), seats(900))))
    assert "ln_seats" in str(caught.value)


def test_an_immediate_cancellation_compares_as_billing_ends_it() -> None:
    zeroed = order("q", CommercialKind.CANCELLATION, seats(0), usage(), effective=JULY)
    ended = replace(ordered_contract(NEW), end_date=JULY, lines=tuple(
        replace(x, end_date=JULY) for x in ordered_contract(NEW).lines))
    assert differences(as_cancelled(zeroed, ended), ended, JULY) == ()
    assert differences(zeroed, ended, JULY) != ()  # as quoted, the term runs to END
    kept = replace(zeroed, lines=(seats(),))
    assert as_cancelled(kept, ended) == kept
