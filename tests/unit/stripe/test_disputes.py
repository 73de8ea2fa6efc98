"""Stripe disputes to canonical events (pure). Fixtures in the current API shape, from
Stripe's own examples (`tests/stripeshapes`); localstripe has no disputes.

The running case: a USD 100.00 card payment (pi_1) is disputed as fraudulent. Stripe takes
the 100.00 and its 15.00 dispute fee out of the balance (txn_w: amount -10000, fee 1500,
net -11500). Won: it gives the 100.00 back and returns the fee (txn_r: amount 10000, fee
-1500, net 11500). Lost: nothing comes back, 100.00 is unrecovered.
"""

from __future__ import annotations

import itertools
import json
from datetime import UTC, date, datetime

import pytest

from finsync.connectors.stripe import mapping
from finsync.domain import codec
from finsync.domain.aggregate import AggregateRef
from finsync.domain.dispute import DisputeOutcome, DisputeStep
from finsync.domain.errors import MappingError
from finsync.domain.events import (
    DisputeClosed,
    DisputeFundsReinstated,
    DisputeFundsWithdrawn,
    DisputeOpened,
)
from finsync.domain.money import Money
from tests.stripeshapes import DAY, T0, Obj, delivered, event, webhook
from tests.stripeshapes.disputes import FEE_USD, dispute, funds
from tests.unit.stripe.mapped import event_of, mapped

OPENED = T0 + 3_600  # 2026-11-27
CLOSED = T0 + 30 * DAY  # 2026-12-27

WITHDRAWN = funds("txn_w", -10_000, FEE_USD, dispute="du_1", created=OPENED)
REINSTATED = funds("txn_r", 10_000, -FEE_USD, dispute="du_1", created=CLOSED)






def _lifecycle(won: bool) -> list[Obj]:
    """Every event of the running case, as Stripe sends them (in order)."""
    opened = dispute("du_1", 10_000, created=OPENED, transactions=[WITHDRAWN])
    review = dispute("du_1", 10_000, created=OPENED, status="under_review",
                     transactions=[WITHDRAWN])
    done = [WITHDRAWN, REINSTATED] if won else [WITHDRAWN]
    closed = dispute("du_1", 10_000, created=OPENED, status="won" if won else "lost",
                     transactions=done)
    events = [event("charge.dispute.created", opened, evt="evt_c", created=OPENED),
              event("charge.dispute.funds_withdrawn", opened, evt="evt_w", created=OPENED),
              event("charge.dispute.updated", review, evt="evt_u", created=OPENED + DAY)]
    if won:
        events.append(event("charge.dispute.funds_reinstated", closed, evt="evt_r",
                            created=CLOSED))
    events.append(event("charge.dispute.closed", closed, evt="evt_x", created=CLOSED))
    return events


def test_a_chargeback_opens_the_dispute_and_withdraws_amount_and_fee() -> None:
    created = _lifecycle(won=False)[0]
    opened_env, withdrawn_env = mapped(webhook(created))
    case = event_of(opened_env, DisputeOpened).dispute
    assert (case.id, case.payment_id, case.amount, case.reason, case.inquiry) == (
        "du_1", "pi_1", Money.of("100.00", "USD"), "fraudulent", False)
    assert case.opened_on == date(2026, 11, 27)
    moved = event_of(withdrawn_env, DisputeFundsWithdrawn).funds
    # -100.00 disputed, 15.00 fee: the balance lost 115.00
    assert (moved.id, moved.dispute_id, moved.amount, moved.fee, moved.net) == (
        "txn_w", "du_1", Money.of("-100.00", "USD"), Money.of("15.00", "USD"),
        Money.of("-115.00", "USD"))
    assert [e.source_event_id for e in (opened_env, withdrawn_env)] == [
        "evt_c", "evt_c/dispute_funds:txn_w"]
    assert withdrawn_env.aggregate == AggregateRef("dispute_funds", "txn_w", 1)
    assert {e.correlation_id for e in (opened_env, withdrawn_env)} == {"stripe:pi_1"}


def test_every_event_that_shows_a_balance_transaction_gives_the_same_document() -> None:
    """Any order, any copy: an aggregate always holds the same payload (so the hub counts
    the others duplicates), and the webhook and poller copies of one event are one."""
    payloads: dict[AggregateRef, set[str]] = {}
    for evt in _lifecycle(won=True):
        for raw in (webhook(evt), delivered(evt)):
            for draft in mapped(raw):
                wire = json.dumps(codec.draft_to_json(draft)["payload"], sort_keys=True)
                payloads.setdefault(draft.claimed, set()).add(wire)
    assert sorted((a.type, a.id) for a in payloads) == [
        ("dispute", "du_1"), ("dispute_closure", "du_1"), ("dispute_funds", "txn_r"),
        ("dispute_funds", "txn_w")]
    assert all(len(seen) == 1 for seen in payloads.values())


def test_a_won_dispute_gives_the_money_back_and_leaves_nothing_unrecovered() -> None:
    closed = _lifecycle(won=True)[-1]
    closure_env, *moves = mapped(webhook(closed))
    closure = event_of(closure_env, DisputeClosed).closure
    # -(-100.00 + 100.00) = 0.00 unrecovered
    assert (closure.outcome, closure.unrecovered) == (DisputeOutcome.WON,
                                                      Money.of("0.00", "USD"))
    assert closure.closed_on == date(2026, 12, 27)
    assert closure.steps == (
        DisputeStep("txn_w", Money.of("-100.00", "USD"), date(2026, 11, 27)),
        DisputeStep("txn_r", Money.of("100.00", "USD"), date(2026, 12, 27)))
    back = event_of(moves[1], DisputeFundsReinstated).funds
    assert (back.amount, back.fee, back.net) == (Money.of("100.00", "USD"),
                                                 Money.of("-15.00", "USD"),
                                                 Money.of("115.00", "USD"))


def test_a_lost_dispute_leaves_the_disputed_amount_unrecovered() -> None:
    closure_env, withdrawn_env = mapped(webhook(_lifecycle(won=False)[-1]))
    closure = event_of(closure_env, DisputeClosed).closure
    assert (closure.outcome, closure.unrecovered) == (DisputeOutcome.LOST,
                                                      Money.of("100.00", "USD"))
    assert event_of(withdrawn_env, DisputeFundsWithdrawn).funds.id == "txn_w"


def test_a_lost_dispute_on_a_partly_refunded_payment_gives_back_the_refunded_part() -> None:
    """30.00 of the 100.00 was refunded before the dispute: Stripe takes 100.00 and, when
    the dispute is lost, gives the 30.00 back. Unrecovered: 100.00 - 30.00 = 70.00."""
    back = funds("txn_p", 3_000, 0, dispute="du_1", created=CLOSED)
    closed = dispute("du_1", 10_000, status="lost", transactions=[WITHDRAWN, back])
    closure_env, _, back_env = mapped(webhook(event("charge.dispute.closed", closed,
                                                    evt="evt_x", created=CLOSED)))
    assert event_of(closure_env, DisputeClosed).closure.unrecovered == Money.of("70.00", "USD")
    assert event_of(back_env, DisputeFundsReinstated).funds.net == Money.of("30.00", "USD")


def test_a_fee_alone_is_withdrawn_when_charged_and_reinstated_when_returned() -> None:
    """The dispute-countered fee: no disputed money moves, only a fee (charged 15.00 when
    evidence was submitted, returned when the dispute is won)."""
    charged = funds("txn_f", 0, FEE_USD, dispute="du_1")
    returned = funds("txn_g", 0, -FEE_USD, dispute="du_1")
    updated = dispute("du_1", 10_000, status="under_review",
                      transactions=[WITHDRAWN, charged, returned])
    drafts = mapped(webhook(event("charge.dispute.updated", updated, evt="evt_u")))
    assert [type(d.event) for d in drafts] == [DisputeFundsWithdrawn, DisputeFundsWithdrawn,
                                               DisputeFundsReinstated]


def test_an_inquiry_moves_no_money_and_closes_with_nothing_unrecovered() -> None:
    inquiry = dispute("du_2", 5_000, status="warning_needs_response", case_type="inquiry")
    (opened_env,) = mapped(webhook(event("charge.dispute.created", inquiry, evt="evt_i")))
    assert event_of(opened_env, DisputeOpened).dispute.inquiry
    closed = dispute("du_2", 5_000, status="warning_closed", case_type="inquiry")
    (closure_env,) = mapped(webhook(event("charge.dispute.closed", closed, evt="evt_j",
                                          created=CLOSED)))
    closure = event_of(closure_env, DisputeClosed).closure
    assert (closure.outcome, closure.unrecovered, closure.steps) == (
        DisputeOutcome.INQUIRY_CLOSED, Money.of("0.00", "USD"), ())


@pytest.mark.parametrize(("currency", "amount", "fee", "net"), [
    ("usd", "-50.00", "15.00", "-65.00"),  # 5000 and 1500 cents
    ("eur", "-50.00", "15.00", "-65.00"),
    ("jpy", "-5000", "1500", "-6500"),  # no minor unit: yen as they are
    ("kwd", "-5.000", "1.500", "-6.500"),  # three decimals: fils
])
def test_amounts_keep_their_currency_exponent(currency: str, amount: str, fee: str,
                                              net: str) -> None:
    taken = funds("txn_j", -5_000, 1_500, dispute="du_3", currency=currency)
    case = dispute("du_3", 5_000, currency=currency, transactions=[taken])
    opened_env, moved_env = mapped(webhook(event("charge.dispute.created", case,
                                                 evt="evt_y")))
    moved = event_of(moved_env, DisputeFundsWithdrawn).funds
    code = currency.upper()
    assert (moved.amount, moved.fee, moved.net) == (
        Money.of(amount, code), Money.of(fee, code), Money.of(net, code))
    assert event_of(opened_env, DisputeOpened).dispute.amount == -Money.of(amount, code)


def test_a_charge_without_payment_intent_names_the_charge() -> None:
    old = dispute("du_4", 1_000, payment_intent=None, charge="ch_9")
    (env,) = mapped(webhook(event("charge.dispute.created", old, evt="evt_o")))
    assert event_of(env, DisputeOpened).dispute.payment_id == "ch_9"
    assert env.correlation_id == "stripe:ch_9"
    assert env.occurred_at == datetime.fromtimestamp(T0, UTC)


@pytest.mark.parametrize(("status", "transactions", "code"), [
    ("lost", [{**WITHDRAWN, "net": -10_000}], "totals_mismatch"),
    ("needs_response", [WITHDRAWN], "invalid_field"),
    ("lost", [WITHDRAWN, funds("txn_e", 10_000, 0, dispute="du_1", currency="eur")],
     "currency_mismatch"),
])
def test_a_dispute_finsync_cannot_read_is_refused_naming_it(status: str,
                                                            transactions: list[Obj],
                                                            code: str) -> None:
    """Refused with the code finance sees, and the dispute it is about (`subject`): every
    copy of it is then one exception (hub.intake.reject_in)."""
    bad = dispute("du_1", 10_000, status=status, transactions=transactions)
    for raw in (webhook(event("charge.dispute.closed", bad, evt="evt_x")),
                delivered(event("charge.dispute.closed", bad, evt="evt_x"))):
        with pytest.raises(MappingError) as caught:
            mapped(raw)
        assert (caught.value.code, caught.value.subject) == (code, "dispute:du_1")


def test_an_unmappable_event_names_its_object_and_a_body_that_is_no_event_names_none() -> None:
    voided = {"id": "cn_1", "object": "credit_note", "status": "void"}
    with pytest.raises(MappingError) as caught:
        mapped(json.dumps({"id": "evt_v", "object": "event", "type": "credit_note.voided",
                           "created": T0, "data": {"object": voided}}).encode())
    assert (caught.value.code, caught.value.subject) == ("unsupported_event",
                                                         "credit_note:cn_1")
    with pytest.raises(MappingError) as caught:
        mapped(b"not json")
    assert caught.value.subject is None


def test_no_dispute_event_is_left_unsupported() -> None:
    kinds = [f"charge.dispute.{step}" for step in
             ("created", "updated", "funds_withdrawn", "funds_reinstated", "closed")]
    assert not set(kinds) & mapping.UNSUPPORTED
    assert not set(kinds) & mapping.IGNORED


def test_shuffled_events_give_the_same_documents() -> None:
    """Whatever order the events come in, the set of documents (aggregate and payload) is
    the same: nothing in a document depends on which event showed it."""
    events = _lifecycle(won=False)
    seen = []
    for order in itertools.islice(itertools.permutations(events), 0, 24, 5):
        docs = {(d.claimed.type, d.claimed.id,
                 json.dumps(codec.draft_to_json(d)["payload"], sort_keys=True))
                for evt in order for d in mapped(webhook(evt))}
        seen.append(docs)
    assert all(docs == seen[0] for docs in seen)
    assert len(seen[0]) == 3  # opened, txn_w, closure
