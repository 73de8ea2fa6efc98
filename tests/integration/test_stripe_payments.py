"""Stripe payments through the hub to the embedded ledger, on both databases: a PaymentIntent
that pays an invoice is one payment applied to it, whatever order the events arrive in and
however often; refunds re-open what they paid or pay out a credit note's credit; an invoice
paid partly from the customer's credit balance is settled in full; declined attempts show
as dunning.

Every body is what the poller stores (the event with what it fetched beside it), built in
the current API shape from Stripe's examples (`tests/stripeshapes`); one test sends the
older shape localstripe sends, written by hand. The figures are worked below."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine

from finsync.bootstrap import build_hub, build_ledger_service
from finsync.config import FinsyncConfig
from finsync.connectors.ports import SourceEvent, SourcePage
from finsync.connectors.stripe import state as stripe_state
from finsync.connectors.stripe.client import (
    INVOICE_PAYMENTS_OF_INTENT,
    INVOICE_PAYMENTS_OF_INVOICE,
)
from finsync.connectors.stripe.poller import Poller
from finsync.connectors.stripe.state import PollState
from finsync.domain.clock import utc_now
from finsync.domain.money import Money
from finsync.domain.status import DeliveryStatus
from finsync.hub.milestone import Milestone
from finsync.hub.service import Hub
from finsync.storage.raw_log import RawIn
from finsync.systems.ledger.chart import Role
from tests.ledgerkit import CHART
from tests.stripekit import stripe_config
from tests.stripeshapes import DAY, T0, Obj, delivered, event, webhook
from tests.stripeshapes.payments import (
    OLD_API_VERSION,
    charge,
    credit_note,
    invoice,
    invoice_payment,
    line,
    links,
    notes,
    old_intent,
    old_invoice,
    payment_intent,
    refund,
)

HOUR = 3_600
AS_OF = date(2026, 12, 31)


@pytest.fixture
def config(db_url: str) -> FinsyncConfig:
    base = stripe_config(db_url, "http://127.0.0.1:9")  # nothing is fetched: all delivered
    # What waits for another document is retried within milliseconds, not seconds.
    quick = base.delivery.model_copy(update={"backoff_base_s": 0.01, "backoff_cap_s": 0.05,
                                             "attempts_max": 100})
    return base.model_copy(update={"delivery": quick})


# -- the story, in Stripe events --------------------------------------------------------------

IN_1 = invoice("in_1", [line("il_1", 10_000)])  # 100.00, sub_1
IN_2 = invoice("in_2", [line("il_2", 5_000)])  # 50.00, sub_1, paid outside Stripe
# 100.00, sub_3: 30.00 of the customer's credit consumed (balance -30.00 -> 0), 70.00 due
IN_3 = invoice("in_3", [line("il_3", 10_000, subscription="sub_3")], subscription="sub_3",
               starting_balance=-3_000, ending_balance=0)
# 50.00, sub_2: its payment is declined and nothing else comes
IN_4 = invoice("in_4", [line("il_4", 5_000, subscription="sub_2")], subscription="sub_2",
               status="open")


def _opened(inv: Obj) -> Obj:
    return dict(inv, status="open", amount_paid=0, amount_remaining=inv["amount_due"],
                status_transitions=dict(inv["status_transitions"], paid_at=None))


def _paid_by(evt_id: str, inv: Obj, at: int, *payments: Obj) -> bytes:
    return delivered(event("invoice.paid", inv, evt=evt_id, created=at),
                     related={"invoice_payments": links(*payments)})


def _intent(evt_id: str, intent: Obj, at: int, *payments: Obj,
            kind: str = "payment_intent.succeeded") -> bytes:
    return delivered(event(kind, intent, evt=evt_id, created=at),
                     related={"invoice_payments": links(*payments)})


def _refund(evt_id: str, made: Obj, at: int, paid: list[Obj], made_by: list[Obj]) -> bytes:
    evt = event("refund.created", made, evt=evt_id, created=at)
    return delivered(evt, current=dict(made, charge=charge("ch_1", 10_000)),
                     related={"invoice_payments": links(*paid), "credit_notes": notes(*made_by)})


def story() -> list[bytes]:
    """In the order Stripe emitted them (one hour apart)."""
    at = [T0 + n * HOUR for n in range(20)]
    cn_2 = credit_note("cn_2", "in_1", 2_000, refunded={"re_1": 2_000}, invoice_line="il_1")
    credited = {"invoice": IN_1}  # the poller fetches the invoice a credit note credits
    pi_1 = invoice_payment(IN_1, 10_000, intent="pi_1")
    return [
        webhook(event("invoice.finalized", _opened(IN_1), evt="evt_fin_1", created=at[0])),
        _intent("evt_pi_1", payment_intent("pi_1", 10_000), at[1], pi_1),
        _paid_by("evt_paid_1", IN_1, at[2], pi_1),
        webhook(event("invoice.finalized", _opened(IN_2), evt="evt_fin_2", created=at[3])),
        _paid_by("evt_paid_2", IN_2, at[4], invoice_payment("in_2", 5_000, record="prec_1")),
        _intent("evt_pi_9", payment_intent("pi_9", 2_500), at[5]),  # on account
        delivered(event("credit_note.created", credit_note("cn_1", "in_1", 3_000,
                                                           invoice_line="il_1"),
                        evt="evt_cn_1", created=at[6]),
                  related=credited),  # 30.00 to the customer's balance
        webhook(event("invoice.finalized", _opened(IN_3), evt="evt_fin_3", created=at[7])),
        _intent("evt_fail_3", payment_intent("pi_3", 4_000, status="failed",
                                             decline_code="insufficient_funds",
                                             failed_charge="ch_fail_3"), at[8],
                invoice_payment(IN_3, 4_000, intent="pi_3", status="open"),
                kind="payment_intent.payment_failed"),
        _intent("evt_pi_3", payment_intent("pi_3", 4_000), at[9],
                invoice_payment(IN_3, 4_000, intent="pi_3")),
        _intent("evt_pi_4", payment_intent("pi_4", 3_000), at[10],
                invoice_payment(IN_3, 3_000, intent="pi_4")),
        _paid_by("evt_paid_3", IN_3, at[11], invoice_payment("in_3", 4_000, intent="pi_3"),
                 invoice_payment("in_3", 3_000, intent="pi_4")),
        delivered(event("credit_note.created", cn_2, evt="evt_cn_2", created=at[12]),
                  related=credited),
        _refund("evt_re_1", refund("re_1", 2_000), at[13], [pi_1], [cn_2]),
        _refund("evt_re_2", refund("re_2", 500), at[14], [pi_1], [cn_2]),  # no note: re-opens
        webhook(event("invoice.finalized", IN_4, evt="evt_fin_4", created=at[15])),
        _intent("evt_fail_4", payment_intent("pi_6", 5_000, status="failed",
                                             decline_code="expired_card",
                                             failed_charge="ch_fail_6"), at[16],
                invoice_payment(IN_4, 5_000, intent="pi_6", status="open"),
                kind="payment_intent.payment_failed"),
    ]


def as_sent(bodies: list[bytes]) -> list[bytes]:
    return bodies


def reversed_order(bodies: list[bytes]) -> list[bytes]:
    return bodies[::-1]


def shuffled_twice(bodies: list[bytes]) -> list[bytes]:
    """Every body twice (a webhook and the poller, a retrying sender), in a random order."""
    doubled = bodies + bodies
    random.Random(15).shuffle(doubled)
    return doubled


ORDERS: list[Callable[[list[bytes]], list[bytes]]] = [as_sent, reversed_order,
                                                      shuffled_twice]


def run(hub: Hub, bodies: list[bytes]) -> None:
    for body in bodies:  # one at a time: each arrives on its own
        hub.intake.store([RawIn("stripe", body, {})])
    _summary, waiting = hub.run_until_settled(60)
    assert waiting.nothing, waiting
    # What waited for another document was a sequencing_error while it waited, resolved
    # since; nothing is left for finance.
    assert hub.exceptions() == []


def balances(config: FinsyncConfig, engine: Engine) -> dict[Role, Decimal]:
    service = build_ledger_service(config, engine)
    rows = {row.account: row.balance.amount for row in service.trial_balance("le_us", AS_OF)}
    roles = (Role.CASH, Role.ACCOUNTS_RECEIVABLE, Role.CUSTOMER_CREDITS, Role.DEFERRED_REVENUE)
    return {role: rows.get(CHART.code_for(role), Decimal(0)) for role in roles}


def receivables(config: FinsyncConfig, engine: Engine) -> dict[str, Money]:
    items = build_ledger_service(config, engine).open_items("le_us", AS_OF)
    return {i.document_id: i.open for i in items if i.kind.value == "invoice" and
            not i.open.is_zero}


@pytest.mark.parametrize("order", ORDERS, ids=lambda o: o.__name__)
def test_the_same_stripe_events_in_any_order_give_the_same_books(
        config: FinsyncConfig, engine: Engine,
        order: Callable[[list[bytes]], list[bytes]]) -> None:
    hub = build_hub(config, engine=engine)
    run(hub, order(story()))
    # cash: pi_1 100 + prec_1 50 + pi_9 25 + pi_3 40 + pi_4 30 - re_1 20 - re_2 5 = 220.00
    # receivable: in_1 100 - 100 + 5 (re-opened by re_2) = 5; in_2 0; in_3 100 - 30 credit
    #   - 40 - 30 = 0; in_4 50 (declined, unpaid): 55.00
    # customer credits: pi_9 25 + cn_1 30 + cn_2 20 - in_3 30 - re_1 20 = 25.00 (a credit)
    # deferred revenue: invoices 300 - credit notes 50 = 250.00 (a credit)
    assert balances(config, engine) == {
        Role.CASH: Decimal("220.00"), Role.ACCOUNTS_RECEIVABLE: Decimal("55.00"),
        Role.CUSTOMER_CREDITS: Decimal("-25.00"), Role.DEFERRED_REVENUE: Decimal("-250.00")}
    assert receivables(config, engine) == {"in_1": Money.of("5.00", "USD"),
                                           "in_4": Money.of("50.00", "USD")}
    status = hub.status()
    # invoice 4, credit memo 2, payment 5 (pi_1, prec_1, pi_9, pi_3, pi_4), refund 2
    assert status["deliveries"] == {DeliveryStatus.DONE: 13}
    assert status["dunning"] == {"threads": 1, "declined_attempts": 2}


def test_a_declined_payment_shows_on_its_thread_as_dunning(config: FinsyncConfig,
                                                           engine: Engine) -> None:
    hub = build_hub(config, engine=engine)
    run(hub, story())
    declined = [m for m in hub.timeline("stripe:sub_2")
                if m["name"] == Milestone.PAYMENT_DECLINED]
    assert [(m["target"], m["name"]) for m in declined] == [("hub", "payment_declined")]
    assert hub.transaction_status("stripe:sub_2")["dunning"] is True
    # sub_3's first attempt was declined, a later one paid: not in dunning
    assert hub.transaction_status("stripe:sub_3")["dunning"] is False
    names = [m["name"] for m in hub.timeline("stripe:sub_3")]
    assert Milestone.PAYMENT_DECLINED in names and Milestone.PAYMENT_APPLIED in names


def old_story() -> list[bytes]:
    """localstripe's shape: invoice.payment_succeeded names its PaymentIntent and charge,
    payment_intent.succeeded names its invoice; webhooks, nothing fetched."""
    def old(kind: str, obj: dict[str, Any], evt: str, at: int) -> bytes:
        return webhook(event(kind, obj, evt=evt, created=at, api_version=OLD_API_VERSION))
    return [old("invoice.created", old_invoice("in_1", 3_750, status="open"), "evt_c", T0),
            old("payment_intent.succeeded", old_intent("pi_1", 3_750), "evt_pi", T0 + 1),
            old("invoice.payment_succeeded", old_invoice("in_1", 3_750), "evt_ps", T0 + 2),
            old("payment_intent.succeeded", old_intent("pi_8", 1_000, invoice=None), "evt_p8",
                T0 + DAY)]


@pytest.mark.parametrize("order", ORDERS, ids=lambda o: o.__name__)
def test_the_older_shape_gives_one_payment_applied_to_its_invoice(
        config: FinsyncConfig, engine: Engine,
        order: Callable[[list[bytes]], list[bytes]]) -> None:
    hub = build_hub(config, engine=engine)
    run(hub, order(old_story()))
    # cash 37.50 + 10.00 on account; in_1 settled; 10.00 customer credit
    assert balances(config, engine) == {
        Role.CASH: Decimal("47.50"), Role.ACCOUNTS_RECEIVABLE: Decimal("0.00"),
        Role.CUSTOMER_CREDITS: Decimal("-10.00"), Role.DEFERRED_REVENUE: Decimal("-37.50")}
    assert hub.status()["deliveries"] == {DeliveryStatus.DONE: 3}  # in_1, pi_1, pi_8


class _Stripe:
    """Stripe as the poller meets it: current-shape events, oldest first, and the lists it
    fetches beside them (by object type and id)."""

    def __init__(self, events: list[Obj], answers: dict[tuple[str, str], Obj]) -> None:
        self.events, self.answers = events, answers
        self.fetched: list[tuple[str, str]] = []

    def events_after(self, cursor: str | None, limit: int) -> SourcePage:
        if cursor is not None:
            return SourcePage((), cursor, False)
        return SourcePage(tuple(SourceEvent(e["id"], e["type"], e["created"], e)
                                for e in self.events), "end", False)

    def fetch(self, object_type: str, external_id: str) -> Obj:
        self.fetched.append((object_type, external_id))
        return self.answers[(object_type, external_id)]


def test_the_poller_fetches_what_links_a_payment_to_its_invoice(config: FinsyncConfig,
                                                                 engine: Engine) -> None:
    hub = build_hub(config, engine=engine)
    pi_1 = invoice_payment(IN_1, 10_000, intent="pi_1")
    events = [event("invoice.finalized", _opened(IN_1), evt="evt_fin", created=T0),
              event("payment_intent.succeeded", payment_intent("pi_1", 10_000), evt="evt_pi",
                    created=T0 + HOUR),
              event("invoice.paid", IN_1, evt="evt_paid", created=T0 + HOUR)]
    # The webhooks come first: the invoice is mapped, the other two wait for the poller.
    run(hub, [webhook(e) for e in events])
    assert balances(config, engine)[Role.CASH] == Decimal(0)
    stripe = _Stripe(events, {(INVOICE_PAYMENTS_OF_INTENT, "pi_1"): links(pi_1),
                              (INVOICE_PAYMENTS_OF_INVOICE, "in_1"): links(pi_1)})
    stripe_state.upgrade(engine)
    poller = Poller(stripe, PollState(engine, "stripe", utc_now))
    assert poller.poll(lambda bodies: hub.intake.store(
        [RawIn("stripe", b, {}) for b in bodies])).fetched == 2
    assert stripe.fetched == [(INVOICE_PAYMENTS_OF_INTENT, "pi_1"),
                              (INVOICE_PAYMENTS_OF_INVOICE, "in_1")]
    run(hub, [])
    assert balances(config, engine)[Role.CASH] == Decimal("100.00")
    assert receivables(config, engine) == {}
