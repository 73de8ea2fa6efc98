"""The commercial layer's marks read back by the Stripe source (`connectors/stripe/marks.py`):
a subscription and a customer the subscription platform wrote map in canonical ids, and
the events a quote caused carry the quote id as correlation id, in Stripe's current shape
(`tests/stripeshapes`). Unmarked objects map as they always did."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

from finsync.connectors.stripe import mapping, marks, order_params
from finsync.connectors.stripe.objects import SourceSettings
from finsync.domain.errors import MappingError
from finsync.domain.events import (
    ContractAmended,
    ContractCreated,
    CustomerUpserted,
    InvoiceIssued,
)
from finsync.domain.party import CustomerAccount, PostalAddress
from tests.stripeshapes import DAY, T0, delivered, event, listing, shaped
from tests.stripeshapes.contracts import YEAR, item, price, subscription
from tests.stripeshapes.documents import invoice as invoice_of
from tests.stripeshapes.documents import line, subscription_parent
from tests.stripeshapes.requests import decode
from tests.unit.stripe.mapped import carried, event_of, mapped

# billing's price id of the seats is price_seat_annual; Stripe sells it as price_1QSeats
SETTINGS = SourceSettings("le_us", billing_prices={"price_seat_annual": "price_1QSeats"})
SUB_MARKS = {"finsync_contract_id": "ctr-1", "finsync_customer_id": "acct-acme",
             "finsync_quote_id": "q-1", "finsync_cpq_version": "1"}
ITEM_MARKS = {"finsync_line_id": "ql-seats", "finsync_contract_id": "ctr-1"}


def ordered(quantity: int = 500, meta: dict[str, str] | None = None,
            **fields: Any) -> dict[str, Any]:
    """The subscription the port made: 500 seats x 120.00 a year, marked."""
    seats = dict(item("si_seats", price("price_1QSeats", "prod_seats", 12_000), quantity),
                 metadata=dict(ITEM_MARKS))
    return subscription([seats], metadata=dict(SUB_MARKS if meta is None else meta), **fields)


def moved_to(sub: dict[str, Any], quote: str, version: str) -> dict[str, Any]:
    moved = copy.deepcopy(sub)
    moved["metadata"] |= {"finsync_quote_id": quote, "finsync_cpq_version": version}
    return moved


def test_created_subscription_maps_as_its_contract_caused_by_its_quote() -> None:
    raw = delivered(event("customer.subscription.created", ordered(), evt="evt_c"),
                    version=1)
    (draft,) = mapped(raw, SETTINGS)
    created = event_of(draft, ContractCreated).contract
    assert (draft.correlation_id, draft.aggregate.id, draft.aggregate.version) == \
        ("q-1", "ctr-1", 1)
    assert (created.id, created.customer_id) == ("ctr-1", "acct-acme")
    assert [(ln.line_id, ln.price_id, ln.quantity) for ln in created.lines] == \
        [("ql-seats", "price_seat_annual", 500)]
    assert created.refs.get("stripe") == "sub_1"  # the Stripe id stays a reference


def test_update_that_moved_the_quote_mark_is_caused_by_the_new_quote() -> None:
    # the port's amendment: 500 -> 800 seats and the marks moved to q-2, in one request
    after = moved_to(ordered(800), "q-2", "2")
    previous = {"items": ordered()["items"],
                "metadata": {"finsync_quote_id": "q-1", "finsync_cpq_version": "1"}}
    raw = delivered(event("customer.subscription.updated", after, evt="evt_u",
                          created=T0 + DAY, previous=previous), version=2)
    (draft,) = mapped(raw, SETTINGS)
    amended = event_of(draft, ContractAmended).amendment
    assert (draft.correlation_id, draft.aggregate.id, draft.aggregate.version) == \
        ("q-2", "ctr-1", 2)
    assert amended.contract.lines[0].quantity == 800


@pytest.mark.parametrize("previous", [
    {"latest_invoice": "in_0"},  # a change made at Stripe, or a period's roll
    {"metadata": {"note": None}},  # a key of someone else's changed, not the quote's
])
def test_update_the_quote_did_not_cause_keeps_the_subscriptions_thread(
        previous: dict[str, Any]) -> None:
    raw = delivered(event("customer.subscription.updated", ordered(), evt="evt_r",
                          previous=previous), version=2)
    (draft,) = mapped(raw, SETTINGS)
    assert (draft.correlation_id, draft.aggregate.id) == ("stripe:sub_1", "ctr-1")


def test_update_that_schedules_a_cancellation_is_not_the_cancellations_check() -> None:
    # a cancellation at the period's end: Stripe's event is an amendment with a cancel date,
    # not the cancellation the order asks; it is not checked against the order
    after = moved_to(ordered(), "q-9", "9")
    after["cancel_at_period_end"] = True
    previous = {"cancel_at_period_end": False,
                "metadata": {"finsync_quote_id": "q-1", "finsync_cpq_version": "1"}}
    raw = delivered(event("customer.subscription.updated", after, evt="evt_x",
                          previous=previous), version=2)
    (draft,) = mapped(raw, SETTINGS)
    assert draft.correlation_id == "stripe:sub_1"


def test_unmarked_subscription_maps_in_stripes_ids_as_before() -> None:
    plain = subscription([item("si_seats", price("price_1QSeats", "prod_seats", 12_000),
                               500)])
    raw = delivered(event("customer.subscription.created", plain, evt="evt_p"), version=1)
    (draft,) = mapped(raw, SETTINGS)
    created = event_of(draft, ContractCreated).contract
    assert (draft.correlation_id, created.id, created.customer_id) == \
        ("stripe:sub_1", "sub_1", "cus_1")
    assert [(ln.line_id, ln.price_id) for ln in created.lines] == [("si_seats", "price_1QSeats")]


def test_a_subscription_whose_mark_was_removed_keeps_its_identity_for_that_event() -> None:
    bare = ordered(meta={})
    raw = delivered(event("customer.subscription.updated", bare, evt="evt_m",
                          previous={"metadata": dict(SUB_MARKS)}), version=3)
    (draft,) = mapped(raw, SETTINGS)
    assert draft.aggregate.id == "ctr-1"
    assert draft.correlation_id == "stripe:sub_1"  # no quote caused it


# -- customers ---------------------------------------------------------------------------

def stripe_customer(meta: dict[str, str]) -> dict[str, Any]:
    return shaped("customer", id="cus_1", name="Acme Analytics Customer Ltd", currency="usd",
                  email="ap@acme.example", metadata=meta,
                  address={"city": "New York", "country": "US", "line1": "1 Main Street",
                           "line2": None, "postal_code": "10001", "state": "NY"})


def test_marked_customer_maps_under_its_canonical_id_with_its_stripe_reference() -> None:
    marked = stripe_customer({"finsync_customer_id": "acct-acme",
                              "finsync_customer_version": "3"})
    raw = delivered(event("customer.updated", marked, evt="evt_cu",
                          previous={"name": "Acme Ltd"}), version=2)
    (draft,) = mapped(raw, SETTINGS)
    account = event_of(draft, CustomerUpserted).customer
    assert (draft.aggregate.id, account.id, account.version) == ("acct-acme", "acct-acme", 2)
    assert account.refs.get("stripe") == "cus_1"
    assert (account.name, account.billing_region) == ("Acme Analytics Customer Ltd", "NY")


def test_unmarked_customer_keeps_its_stripe_id() -> None:
    raw = delivered(event("customer.created", stripe_customer({}), evt="evt_c0"), version=1)
    (draft,) = mapped(raw, SETTINGS)
    assert event_of(draft, CustomerUpserted).customer.id == "cus_1"


def test_versions_of_a_marked_customer_count_per_canonical_id() -> None:
    # two Stripe customers marked with one canonical id are one aggregate to the hub: the
    # poller numbers their events on one counter, so versions rise across both
    first = event("customer.created", stripe_customer({"finsync_customer_id": "acct-acme"}),
                  evt="evt_1")
    other = dict(stripe_customer({"finsync_customer_id": "acct-acme"}), id="cus_2")
    second = event("customer.updated", other, evt="evt_2", previous={"name": "x"})
    plain = event("customer.created", stripe_customer({}), evt="evt_3")
    assert mapping.version_key(first, None) == mapping.version_key(second, None) == \
        "finsync:customer:acct-acme"
    assert mapping.version_key(plain, None) == "cus_1"
    # a subscription counts per subscription, marked or not (a second one marked with the
    # same contract is a second version 1: a sequencing_error, not an amendment)
    sub = event("customer.subscription.created", ordered(), evt="evt_4")
    assert mapping.version_key(sub, None) == "sub_1"
    # a thin event is numbered by its fetched object's identity
    thin = dict(first, data={"object": {"id": "cus_1", "object": "customer"}})
    assert mapping.version_key(thin, first["data"]["object"]) == "finsync:customer:acct-acme"


@pytest.mark.parametrize("bad", ["x" * (marks.MARK_MAX + 1), " acct-acme", 42])
def test_a_mark_that_is_no_id_is_refused_not_ignored(bad: object) -> None:
    raw = delivered(event("customer.updated", stripe_customer({"finsync_customer_id": bad}),  # type: ignore[dict-item]
                          evt="evt_b", previous={"name": "x"}), version=2)
    with pytest.raises(MappingError) as refused:
        mapped(raw, SETTINGS)
    assert refused.value.code == "invalid_field"
    # the poller still numbers it (by its Stripe id) and files its fetches
    assert mapping.version_key(
        event("customer.updated", stripe_customer({"finsync_customer_id": bad}),  # type: ignore[dict-item]
              evt="evt_b"), None) == "cus_1"


# -- invoices -------------------------------------------------------------------------------

def invoice(reason: str, snapshot: dict[str, str] | None,
            line_meta: dict[str, str] | None = None) -> dict[str, Any]:
    """The year's invoice of the seats: 500 x 120.00 = 60,000.00."""
    seats = line("il_1", 6_000_000, quantity=500, price="price_1QSeats",
                 parent=subscription_parent("si_seats"), end=T0 + YEAR)
    if line_meta is not None:
        seats["metadata"] = line_meta
    inv = invoice_of([seats])
    inv["billing_reason"] = reason
    inv["parent"]["subscription_details"]["metadata"] = snapshot
    return inv


def issued(inv: dict[str, Any]) -> tuple[str, InvoiceIssued]:
    (draft,) = mapped(carried(event("invoice.finalized", inv, evt="evt_i")), SETTINGS)
    return draft.correlation_id, event_of(draft, InvoiceIssued)


@pytest.mark.parametrize("reason", ["subscription_create", "subscription_update"])
def test_invoice_the_quote_caused_joins_the_quote_and_bills_the_contract(reason: str) -> None:
    # Stripe's snapshot of the subscription's metadata at finalization names the quote
    thread, found = issued(invoice(reason, moved_to(ordered(), "q-2", "2")["metadata"]))
    assert (thread, found.invoice.contract_id) == ("q-2", "ctr-1")
    # Stripe's lines carry the subscription's marks, not the item's: the line keeps its item
    assert found.invoice.lines[0].contract_line_id == "si_seats"


@pytest.mark.parametrize("reason", ["subscription_cycle", "manual", "subscription_threshold"])
def test_invoice_of_a_marked_contract_not_caused_by_a_quote_keeps_its_thread(
        reason: str) -> None:
    thread, found = issued(invoice(reason, dict(SUB_MARKS)))
    assert (thread, found.invoice.contract_id) == ("stripe:sub_1", "ctr-1")


def test_invoice_whose_lines_carry_the_items_marks_bills_the_contract_line() -> None:
    # an emulator's lines carry their item's metadata (localstripe), with no snapshot
    thread, found = issued(invoice("subscription_create", None, dict(ITEM_MARKS)))
    assert (thread, found.invoice.contract_id) == ("stripe:sub_1", "ctr-1")
    assert found.invoice.lines[0].contract_line_id == "ql-seats"


def test_unmarked_invoice_maps_as_before() -> None:
    thread, found = issued(invoice("subscription_create", None))
    assert (thread, found.invoice.contract_id) == ("stripe:sub_1", "sub_1")
    assert found.invoice.lines[0].contract_line_id == "si_seats"


def test_invoice_lines_naming_two_contracts_are_tied_to_none() -> None:
    inv = invoice("manual", None, dict(ITEM_MARKS))
    other = copy.deepcopy(inv["lines"]["data"][0])
    other["id"], other["metadata"] = "il_2", {"finsync_contract_id": "ctr-2"}
    inv["lines"] = listing([inv["lines"]["data"][0], other])
    inv["total"] = inv["amount_due"] = inv["amount_remaining"] = inv["subtotal"] = 12_000_000
    thread, found = issued(inv)
    assert (thread, found.invoice.contract_id) == ("stripe:sub_1", "sub_1")


@pytest.mark.parametrize("account", [
    CustomerAccount("acct-acme", "Acme Analytics Customer Ltd", "le_us", "USD", "US",
                    address=PostalAddress(("1 Main Street", "Floor 4"), "New York", "10001"),
                    billing_region="NY"),
    CustomerAccount("acct-zug", "Zug AG", "le_us", "USD", "CH", tax_id="CHE-123.456.788 MWST",
                    address=PostalAddress(("Bahnhofstrasse 1",), "Zug", None)),
    CustomerAccount("acct-bare", "Bare Ltd", "le_us", "USD", "US"),
])
def test_what_the_platform_writes_of_a_customer_reads_back_as_the_master_said(
        account: CustomerAccount) -> None:
    # writer (order_params.customer_fields) beside reader (contracts.customer): Stripe's
    # echo of the customer master holds the master's fields, so the hub's echo rule
    # compares like with like
    sent = decode(order_params.customer_fields(account))
    kept = order_params.tax_id(account)
    stripe = stripe_customer(dict(sent["metadata"]))  # type: ignore[arg-type]
    stripe["address"] = {"line1": None, "line2": None, "city": None, "postal_code": None,
                         "state": None} | dict(sent["address"])  # type: ignore[arg-type]
    stripe["address"] = {k: v or None for k, v in stripe["address"].items()}
    stripe["name"] = sent["name"]
    stripe["tax_ids"] = listing([{"type": kept[0], "value": kept[1]}] if kept else [])
    raw = delivered(event("customer.created", stripe, evt="evt_w"), version=1)
    (draft,) = mapped(raw, SETTINGS)
    echo = event_of(draft, CustomerUpserted).customer
    assert dataclasses.replace(echo, version=1, refs=account.refs) == account


def test_the_pollers_call_log_files_a_fetch_under_the_thread_the_hub_will_give() -> None:
    created = event("customer.subscription.created", ordered(), evt="evt_c")
    rolled = event("customer.subscription.updated", ordered(), evt="evt_r",
                   previous={"latest_invoice": "in_0"})
    bad = event("customer.subscription.created", ordered(meta={"finsync_contract_id": "ctr-1",
                                                               "finsync_quote_id": " q"}),
                evt="evt_b")
    assert [mapping.thread_of(e) for e in (created, rolled, bad)] == \
        ["q-1", "stripe:sub_1", "stripe:sub_1"]


def test_the_mirror_keeps_finsyncs_marks_and_no_other_metadata() -> None:
    # reconciliation reads Stripe's books from the mirror, which drops personal data
    from finsync.connectors.stripe.mirror import scrubbed

    sub = ordered()
    sub["metadata"]["customer_note"] = "call Jane on +1 555 0100"
    sub["items"]["data"][0]["metadata"]["po_number"] = "PO-7"
    kept = scrubbed(sub)
    assert isinstance(kept, dict)
    assert kept["metadata"] == SUB_MARKS
    assert kept["items"]["data"][0]["metadata"] == ITEM_MARKS
    assert "metadata" not in scrubbed(stripe_customer({"note": "x"}))  # type: ignore[operator]
