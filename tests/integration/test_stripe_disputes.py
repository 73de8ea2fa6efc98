"""A Stripe dispute's life through the hub into the embedded ledger, on both databases:
every copy Stripe and the poller make of every event, in any order, gives the same books;
and an object finsync cannot map is one exception, however many copies of it arrive.

Fixtures in the current API shape (`tests/stripeshapes`); localstripe has no disputes.
The running case (hand-worked): a USD 100.00 card payment pi_1 is disputed; Stripe takes
the 100.00 and a 15.00 fee (txn_w: net -115.00).
- Lost: cash -115.00; dispute fees 15.00; chargeback losses 100.00 (the receivable 1270
  took 100.00 and gave it to the loss: 0).
- Won with the fee returned (txn_r: +100.00, fee -15.00, net +115.00): every account back
  to 0, and the closure posts nothing.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import Engine

from finsync.bootstrap import Finance, build_finance, build_ledger_service
from finsync.config import FinsyncConfig, SystemSection
from finsync.domain.events import EventType
from finsync.domain.status import DeliveryStatus, RawStatus
from finsync.storage import raw_log
from finsync.storage.db import reading
from finsync.storage.raw_log import RawIn
from tests.people import BOB
from tests.stripekit import stripe_config
from tests.stripeshapes import DAY, T0, Obj, delivered, event, webhook
from tests.stripeshapes.disputes import FEE_USD, dispute, funds

OPENED, CLOSED = T0 + 3_600, T0 + 30 * DAY  # 27 Nov and 27 Dec 2026
AS_OF = date(2026, 12, 31)
DISPUTES = (EventType.DISPUTE_FUNDS_WITHDRAWN, EventType.DISPUTE_FUNDS_REINSTATED,
            EventType.DISPUTE_CLOSED)
WITHDRAWN = funds("txn_w", -10_000, FEE_USD, dispute="du_1", created=OPENED)
REINSTATED = funds("txn_r", 10_000, -FEE_USD, dispute="du_1", created=CLOSED)


@pytest.fixture
def finance(db_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Finance]:
    monkeypatch.setenv("FINSYNC_TEST_WHSEC", "whsec_disputes")
    monkeypatch.setenv("FINSYNC_TEST_WHSEC_OLD", "whsec_disputes_old")
    monkeypatch.setenv("FINSYNC_TEST_STRIPE_KEY", "sk_test_disputes")
    config = _config(db_url)
    built = build_finance(config, engine=engine)
    yield built


def _config(db_url: str) -> FinsyncConfig:
    base = stripe_config(db_url, "http://127.0.0.1:9")  # never called: no polling here
    routes = {**base.routes, **{t.value: ["ledger"] for t in DISPUTES}}
    entity = base.ledger.entities[0].model_copy(update={"fiscal_years": [2026, 2027]})
    ledger = base.ledger.model_copy(update={"entities": [entity]})
    # A finance stack needs a revenue engine and (today, issue 15 Build 7) a billing system
    # for reconciliation; nothing is routed to them here.
    systems = {**base.systems, "revrec": SystemSection(role="revenue", connector="embedded"),
               "billing": SystemSection(role="billing", connector="embedded")}
    return base.model_copy(update={"routes": routes, "ledger": ledger, "systems": systems})


def _lifecycle(won: bool) -> list[Obj]:
    opened = dispute("du_1", 10_000, created=OPENED, transactions=[WITHDRAWN])
    done = [WITHDRAWN, REINSTATED] if won else [WITHDRAWN]
    closed = dispute("du_1", 10_000, created=OPENED, status="won" if won else "lost",
                     transactions=done)
    events = [event("charge.dispute.created", opened, evt="evt_c", created=OPENED),
              event("charge.dispute.funds_withdrawn", opened, evt="evt_w", created=OPENED)]
    if won:
        events.append(event("charge.dispute.funds_reinstated", closed, evt="evt_r",
                            created=CLOSED))
    events.append(event("charge.dispute.closed", closed, evt="evt_x", created=CLOSED))
    return events


def _copies(events: list[Obj], order: str) -> list[bytes]:
    """Each event as a webhook and as the poller's delivery; `shuffled` also resends some
    and mixes them all."""
    bodies = [raw for evt in events for raw in (webhook(evt), delivered(evt))]
    if order == "reversed":
        return bodies[::-1]
    if order == "shuffled":
        rng = random.Random(15)
        bodies += rng.sample(bodies, 3)  # Stripe's resends
        rng.shuffle(bodies)
    return bodies


def _run(finance: Finance, bodies: list[bytes]) -> None:
    """Each body stored (and processed) on its own, as webhooks arrive one by one."""
    for body in bodies:
        finance.hub.intake.store([RawIn("stripe", body, {})])
        finance.hub.run_until_idle()


def _balances(finance: Finance, engine: Engine) -> dict[str, Decimal]:
    service = build_ledger_service(_config(str(engine.url)), engine)
    return {row.account: row.balance.amount
            for row in service.trial_balance("le_us", AS_OF) if not row.balance.is_zero}


@pytest.mark.parametrize("order", ["in_order", "reversed", "shuffled"])
def test_a_lost_dispute_books_the_same_whatever_the_order_and_copies(
        finance: Finance, engine: Engine, order: str) -> None:
    _run(finance, _copies(_lifecycle(won=False), order))
    assert finance.hub.exceptions() == []
    assert _balances(finance, engine) == {"1000": Decimal("-115.00"),
                                          "6500": Decimal("15.00"),
                                          "6510": Decimal("100.00")}
    # opened, txn_w, closure: the ledger got the money and the closure, once each
    assert finance.hub.status()["deliveries"] == {DeliveryStatus.DONE: 2}


@pytest.mark.parametrize("order", ["in_order", "reversed", "shuffled"])
def test_a_won_dispute_with_its_fee_returned_leaves_the_books_as_they_were(
        finance: Finance, engine: Engine, order: str) -> None:
    _run(finance, _copies(_lifecycle(won=True), order))
    assert finance.hub.exceptions() == []
    assert _balances(finance, engine) == {}
    # txn_w, txn_r and the closure (nothing unrecovered: no entry) reached the ledger
    assert finance.hub.status()["deliveries"] == {DeliveryStatus.DONE: 3}


def _broken(evt: str, kind: str, dispute_id: str) -> Obj:
    """A dispute event finsync cannot map: its balance transaction's net is not
    amount - fee."""
    bad = {**WITHDRAWN, "net": -10_000, "source": dispute_id}
    return event(kind, dispute(dispute_id, 10_000, transactions=[bad]), evt=evt)


def test_every_copy_of_an_unmappable_object_is_one_exception(
        finance: Finance, engine: Engine) -> None:
    """du_9: its created event as a webhook, the poller's copy of it, Stripe's resend, and
    its funds_withdrawn event: four raw events, one `mapping_error` naming du_9 and all
    four. Another dispute (du_8) is another exception; a body that is no JSON, its own."""
    created = _broken("evt_9c", "charge.dispute.created", "du_9")
    bodies = [webhook(created), delivered(created), webhook(created),
              webhook(_broken("evt_9w", "charge.dispute.funds_withdrawn", "du_9")),
              webhook(_broken("evt_8c", "charge.dispute.created", "du_8")), b"{not json"]
    _run(finance, bodies)
    rows = sorted(finance.hub.exceptions(), key=lambda r: int(r["id"]))
    assert [(r["class"], r["fingerprint"], r["occurrences"]) for r in rows] == [
        ("mapping_error", "mapping:object:stripe:dispute:du_9", 4),
        ("mapping_error", "mapping:object:stripe:dispute:du_8", 1),
        ("mapping_error", "mapping:raw:6", 1)]
    du_9 = rows[0]
    assert du_9["objects"] == ["dispute:du_9", "raw_event:1", "raw_event:2", "raw_event:3",
                               "raw_event:4"]
    assert (du_9["detail"], du_9["raw_event_id"]) == ("totals_mismatch", 4)
    # Retry sends every copy to be mapped again; they fail again into the same exception.
    outcome = finance.triage.retry(int(du_9["id"]), BOB, "Stripe fixed the transaction")
    assert outcome.detail == "4 raw events (1, 2, 3, 4) will be mapped again"
    with reading(engine) as conn:
        copies = [raw_log.get(conn, i) for i in (1, 2, 3, 4)]
    assert {None if raw is None else raw.status for raw in copies} == {RawStatus.RECEIVED}
    finance.hub.run_until_idle()
    again = [r for r in finance.hub.exceptions() if r["id"] == du_9["id"]]
    assert [(r["status"], r["occurrences"]) for r in again] == [("open", 8)]
    assert len(finance.hub.exceptions()) == 3
