"""Stripe's `billing_cycle_anchor` as the contract's billing anchor
(docs.stripe.com/billing/subscriptions/billing-cycle: "a monthly subscription created on May
15 with an anchor at June 1 is billed on May 15, then always on the 1st"). Stripe prorates by
the second; on the contract's whole days that is the by-day share, the default convention."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from finsync.connectors.stripe.catalog import Catalog
from finsync.connectors.stripe.mapping import translate
from finsync.connectors.stripe.objects import SourceSettings
from finsync.domain.catalog import StandaloneSellingPrice
from finsync.domain.contract import SubscriptionContract
from finsync.domain.errors import MappingError
from finsync.domain.events import ContractCreated
from finsync.domain.money import Money
from finsync.domain.proration import ProrationConvention
from finsync.systems.revrec import ContractBooked, RecognitionTerms, book_contract
from tests.stripeshapes import delivered, event
from tests.stripeshapes.contracts import item, price, subscription

SEATS = price("price_seats_monthly", "prod_seats", 2_000, interval="month")  # 20.00 a month
SETTINGS = SourceSettings("le_us", catalog=Catalog(prices={"price_seats_monthly": "seat"}))
MAY_15 = int(datetime(2026, 5, 15, 9, 30, tzinfo=UTC).timestamp())
JUNE_1 = int(datetime(2026, 6, 1, tzinfo=UTC).timestamp())


def created(sub: dict[str, Any]) -> SubscriptionContract:
    evt = event("customer.subscription.created", sub, evt="evt_sub")
    (draft,) = translate(SETTINGS, "stripe", delivered(evt, version=1))
    assert isinstance(draft.event, ContractCreated)
    return draft.event.contract


def _anchored(anchor: Any) -> dict[str, Any]:
    # Until the anchor, the current period is the stub [May 15, June 1).
    seats = item("si_seats", SEATS, 50, start=MAY_15, end=JUNE_1)
    return subscription([seats], start=MAY_15, billing_cycle_anchor=anchor)


def test_billing_cycle_anchor_after_the_start_is_the_contracts_billing_anchor() -> None:
    contract = created(_anchored(JUNE_1))
    assert (contract.start_date, contract.end_date) == (date(2026, 5, 15), date(2026, 6, 1))
    assert contract.billing_anchor == date(2026, 6, 1)
    assert contract.proration is ProrationConvention.BY_DAY
    # The stub Stripe invoices first: 50 x 20.00 x 17/31 = 548.387... -> 548.39.
    ssp = StandaloneSellingPrice("seat", Money.of("20.00", "USD"), date(2000, 1, 1))
    state = book_contract(ContractBooked("evt_book", contract, (ssp,), RecognitionTerms()))
    assert state.transaction_price == Money.of("548.39", "USD")


def test_billing_cycle_anchor_on_the_start_day_leaves_no_anchor() -> None:
    assert created(_anchored(MAY_15)).billing_anchor is None


def test_a_subscription_without_billing_cycle_anchor_is_anchored_on_its_start() -> None:
    sub = _anchored(JUNE_1)
    del sub["billing_cycle_anchor"]
    assert created(sub).billing_anchor is None


def test_a_billing_cycle_anchor_that_is_not_a_timestamp_is_refused() -> None:
    with pytest.raises(MappingError, match=r"subscription\.billing_cycle_anchor"):
        created(_anchored("2026-06-01"))
