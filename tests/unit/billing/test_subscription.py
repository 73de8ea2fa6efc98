"""New subscriptions, renewal and bad commands."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from finsync.domain.aggregate import AggregateRef
from finsync.domain.errors import ExceptionClass
from finsync.domain.events import ContractCreated, ContractRenewed, InvoiceIssued
from finsync.systems.billing.clock import run
from finsync.systems.billing.errors import (
    BillingCurrencyError,
    DuplicateIdError,
    UnknownCustomerError,
    UnknownLineError,
    UnknownPriceError,
    UnknownProductError,
)
from finsync.systems.billing.subscription import (
    CreateSubscription,
    RenewSubscription,
    create_subscription,
    renew_subscription,
)
from tests.unit.billing.support import (
    END,
    START,
    contract,
    empty_state,
    invoices,
    seat_line,
    subscribed,
    types,
    usd,
)


def test_new_subscription_invoices_first_cycle_at_once() -> None:
    # 500 seats x 120.00 a year, billed annually: 60000.00; US tax 5% = 3000.00
    outcome = subscribed()
    assert types(outcome.emitted) == [ContractCreated, InvoiceIssued]
    [invoice] = invoices(outcome.emitted)
    assert invoice.number == "INV-le_us-000001"
    assert (invoice.subtotal, invoice.tax_total, invoice.total) == (
        usd("60000.00"), usd("3000.00"), usd("63000.00"))
    assert (invoice.issue_date, invoice.due_date) == (START, date(2025, 1, 31))
    [line] = invoice.lines
    assert (line.service_start, line.service_end, line.proration) == (START, END, False)
    assert invoice.contract_version == 1


def test_new_subscription_emits_contract_then_invoice_with_correlation() -> None:
    created, issued = subscribed().emitted
    assert isinstance(created.event, ContractCreated)
    assert created.aggregate == AggregateRef("subscription_contract", "sub_1", 1)
    assert issued.correlation_id == created.correlation_id == "order_1"
    assert issued.causation == created.aggregate


def test_renewal_at_term_end_makes_next_version_and_invoices_it() -> None:
    # term end 2026-01-01: version 2 runs [2026-01-01, 2027-01-01), 500 x 120.00 = 60000.00
    outcome = run(subscribed().state, until=END)
    assert types(outcome.emitted) == [ContractRenewed, InvoiceIssued]
    renewed, issued = outcome.emitted
    assert isinstance(renewed.event, ContractRenewed)
    amendment = renewed.event.amendment
    assert amendment.version == 2
    assert amendment.contract.start_date == END
    assert amendment.contract.end_date == date(2027, 1, 1)
    [invoice] = invoices(outcome.emitted)
    assert (invoice.number, invoice.total) == ("INV-le_us-000002", usd("63000.00"))
    assert issued.correlation_id == renewed.correlation_id == amendment.id
    assert issued.causation == AggregateRef("subscription_contract", "sub_1", 2)


def test_renewal_without_auto_renew_does_not_happen() -> None:
    outcome = run(subscribed(auto_renew=False).state, until=date(2026, 6, 1))
    assert outcome.emitted == ()


def test_unknown_product_is_refused_and_changes_nothing() -> None:
    state = empty_state()
    bad = replace(seat_line(), product_id="prod_nope")
    with pytest.raises(UnknownProductError) as raised:
        create_subscription(state, CreateSubscription(contract(bad)))
    assert raised.value.exception_class is ExceptionClass.MASTER_DATA_MISMATCH
    assert state == empty_state()


def test_unknown_price_is_refused() -> None:
    with pytest.raises(UnknownPriceError, match="price_nope"):
        create_subscription(empty_state(), CreateSubscription(contract(
            replace(seat_line(), price_id="price_nope"))))


def test_price_in_other_currency_is_refused() -> None:
    line = replace(seat_line(), price_id="price_seat_eur")
    with pytest.raises(BillingCurrencyError, match="EUR"):
        create_subscription(empty_state(), CreateSubscription(contract(line)))


def test_unknown_customer_is_refused() -> None:
    with pytest.raises(UnknownCustomerError):
        create_subscription(empty_state(), CreateSubscription(
            replace(contract(), customer_id="cus_nope")))


def test_same_contract_twice_is_refused() -> None:
    state = subscribed().state
    with pytest.raises(DuplicateIdError):
        create_subscription(state, CreateSubscription(contract()))


def test_renewal_named_by_its_quote_is_that_amendment_and_refused_twice() -> None:
    state = subscribed().state
    outcome = renew_subscription(state, RenewSubscription("sub_1", "quote_renewal_2026"))
    [renewed] = outcome.emitted
    assert isinstance(renewed.event, ContractRenewed)
    assert renewed.event.amendment.id == renewed.correlation_id == "quote_renewal_2026"
    with pytest.raises(DuplicateIdError):  # the quote renewed it once: never again
        renew_subscription(outcome.state, RenewSubscription("sub_1", "quote_renewal_2026"))


def test_renewal_priced_with_an_uplift_renews_and_moves_the_baseline_at_that_price() -> None:
    # 120.00 a seat-year with a 7 % uplift: 128.40 for the next term
    uplift = RenewSubscription("sub_1", "quote_renewal", (("ln_seats", usd("128.40")),))
    outcome = renew_subscription(subscribed().state, uplift)
    sub = outcome.state.subscription("sub_1")
    assert [line.unit_price for line in sub.contract.lines] == [usd("128.40")]
    assert [line.unit_price for line in sub.renewal_lines] == [usd("128.40")]
    with pytest.raises(UnknownLineError):
        renew_subscription(subscribed().state, RenewSubscription(
            "sub_1", "quote_renewal", (("ln_gone", usd("1.00")),)))
