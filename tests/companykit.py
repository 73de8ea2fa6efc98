"""A Stripe company (`tests/stripeshapes/company.py`) run through finsync: its configuration
(Stripe the only billing system), Stripe's own figures about it, and its events delivered
by the real poller in Stripe's order or scrambled (shuffled, duplicated, half of them also
as signed webhooks), the pipeline run until nothing waits on business time."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from finsync.bootstrap import Finance, build_stripe_mirror, build_webhooks
from finsync.config import FinsyncConfig, parse_config
from finsync.connectors.ports import SourceEvent, SourcePage
from finsync.connectors.stripe.client import (
    CREDIT_NOTES_OF_INTENT,
    INVOICE_PAYMENTS_OF_INTENT,
    INVOICE_PAYMENTS_OF_INVOICE,
    LISTS,
)
from finsync.connectors.stripe.delivery import CURRENT, delivery_body
from finsync.connectors.stripe.mapping import fetch_plan
from finsync.connectors.stripe.poller import Poller
from finsync.connectors.stripe.signature import header_for
from finsync.connectors.stripe.state import PollState
from finsync.demo.clock import SimClock
from finsync.domain.clock import utc_now
from finsync.domain.events import BusinessDomain
from finsync.storage.raw_log import RawIn
from tests.stripeshapes import listing, webhook
from tests.stripeshapes.company import USD, Case, Company, Obj

ENTITY = "le_acme"
SOURCE = "stripe"
SECRET = "whsec_books"  # in FINSYNC_TEST_WHSEC; the API key in FINSYNC_TEST_STRIPE_KEY
# Rates into USD for the multi-currency entity (1 base = rate USD).
RATES = {"EUR": "1.087", "JPY": "0.0067", "KWD": "3.25", "ISK": "0.0072"}


# -- Stripe's own figures ------------------------------------------------------------------

def stripe_amount(minor: int, case: Case) -> Decimal:
    """Stripe's minor units in the currency's major units, by Stripe's own exponent."""
    return Decimal(minor).scaleb(-case.stripe_exponent)


@dataclass(frozen=True)
class Stripes:
    """What Stripe says about the company at the end of November, per ISO currency code."""

    cash: dict[str, Decimal]  # collected
    receivable: dict[str, Decimal]  # per customer: its open invoices
    tax: dict[str, Decimal]
    billed: dict[str, Decimal]  # before tax

    @classmethod
    def of(cls, stripe: Company) -> Stripes:
        cases = {c.currency: c for c in stripe.cases}
        cash: dict[str, Decimal] = defaultdict(Decimal)
        receivable: dict[str, Decimal] = defaultdict(Decimal)
        tax: dict[str, Decimal] = defaultdict(Decimal)
        billed: dict[str, Decimal] = defaultdict(Decimal)
        for inv in stripe.of_type("invoice"):
            case, code = cases[inv["currency"]], inv["currency"].upper()
            if inv["status"] in ("draft", "void"):
                continue
            cash[code] += stripe_amount(inv["amount_paid"], case)
            receivable[inv["customer"]] += stripe_amount(inv["amount_remaining"], case)
            tax[code] += sum(stripe_amount(t["amount"], case) for t in inv["total_taxes"])
            billed[code] += stripe_amount(inv["total_excluding_tax"], case)
        for note in stripe.of_type("credit_note"):
            case, code = cases[note["currency"]], note["currency"].upper()
            tax[code] -= sum(stripe_amount(t["amount"], case) for t in note["total_taxes"])
            billed[code] -= stripe_amount(note["total_excluding_tax"], case)
        for refund in stripe.of_type("refund"):
            cash[refund["currency"].upper()] -= stripe_amount(refund["amount"],
                                                             cases[refund["currency"]])
        # A PaymentIntent that paid an invoice is in that invoice's `amount_paid` already.
        paying = {p["payment"]["payment_intent"] for p in stripe.of_type("invoice_payment")}
        for pi in stripe.of_type("payment_intent"):
            if pi["id"] not in paying:
                cash[pi["currency"].upper()] += stripe_amount(pi["amount_received"],
                                                              cases[pi["currency"]])
        return cls(dict(cash), dict(receivable), dict(tax), dict(billed))


# -- the company's configuration and its deliveries ------------------------------------------

def config(db_url: str, functional: str, cases: Sequence[Case]) -> FinsyncConfig:
    """Stripe the only billing system; the embedded ledger and revenue engine."""
    rates = [{"base": code, "quote": "USD", "effective": "2026-01-01", "rate": rate}
             for code, rate in RATES.items() if functional == "USD"]
    ssp_case = cases[0] if len(cases) == 1 else USD  # one SSP per product, in one currency
    return parse_config({
        "hub": {"database_url": db_url},
        "ownership": {d.value: "stripe" for d in BusinessDomain} | {
            "ledger": "ledger", "revenue": "revrec", "tax": "tax"},
        "sources": {SOURCE: "stripe", "revrec": "canonical"},
        "stripe": {SOURCE: {"legal_entity": ENTITY, "poll_on_run": False,
                            "api_key_env": "FINSYNC_TEST_STRIPE_KEY",
                            "webhook_secrets": [{"env": "FINSYNC_TEST_WHSEC"}]}},
        "systems": {"ledger": {"role": "ledger", "connector": "embedded"},
                    "revrec": {"role": "revenue", "connector": "embedded"},
                    "stripe": {"role": "billing", "connector": "stripe", "source": SOURCE}},
        "routes": {"invoice.issued": ["ledger", "revrec"],
                   "credit_memo.issued": ["ledger", "revrec"],
                   "revenue.journal_recorded": ["ledger"], "payment.applied": ["ledger"],
                   "refund.issued": ["ledger"], "contract.created": ["revrec"],
                   "contract.amended": ["revrec"], "contract.cancelled": ["revrec"]},
        "ledger": {"entities": [{"id": ENTITY, "name": "Acme", "fiscal_years": [2026, 2027],
                                 "functional_currency": functional}],
                   "rates": rates},
        "revenue": {"ssp": [
            {"product_id": "prod_platform", "currency": ssp_case.currency.upper(),
             "amount": str(stripe_amount(ssp_case.platform_year, ssp_case)),
             "effective_from": "2026-01-01"},
            {"product_id": "prod_seat", "currency": ssp_case.currency.upper(),
             "amount": str(stripe_amount(ssp_case.seat_month, ssp_case)),
             "effective_from": "2026-01-01"}]},
    }, Path(__file__).parent)


class StripeEvents:
    """Stripe's `/v1/events`, oldest first, for the real poller; fetches answer Stripe's
    final objects."""

    def __init__(self, stripe: Company) -> None:
        self._events = [s.event for s in stripe.sent]
        self._objects = {o["id"]: o for o in stripe.objects} | stripe.answers

    def fetch(self, object_type: str, external_id: str) -> Mapping[str, object]:
        if object_type in LISTS or object_type == CREDIT_NOTES_OF_INTENT:
            return listing(self._listed(object_type, external_id))
        found = self._objects[external_id]
        assert found["object"] == object_type
        return found

    def _listed(self, kind: str, key: str) -> list[Obj]:
        """The lists the poller fetches beside payment events, as Stripe's API answers."""
        payments = [o for o in self._objects.values() if o["object"] == "invoice_payment"]
        if kind == INVOICE_PAYMENTS_OF_INVOICE:
            return [p for p in payments if p["invoice"] == key]
        paid = [p for p in payments if p["payment"].get("payment_intent") == key]
        if kind == INVOICE_PAYMENTS_OF_INTENT:  # with expand[]=data.invoice
            return [{**p, "invoice": self._objects[p["invoice"]]} for p in paid]
        invoices = {p["invoice"] for p in paid}
        return [o for o in self._objects.values()
                if o["object"] == "credit_note" and o["invoice"] in invoices]

    def events_after(self, cursor: str | None, limit: int) -> SourcePage:
        start = int(cursor or 0)
        page = self._events[start:start + limit]
        return SourcePage(tuple(SourceEvent(e["id"], e["type"], e["created"], e) for e in page),
                          str(start + len(page)), start + len(page) < len(self._events))


def polled(finance: Finance, stripe: Company) -> None:
    """Every event caught up by the real poller, in the order Stripe created them."""
    hub = finance.hub
    poller = Poller(StripeEvents(stripe), PollState(hub.engine, SOURCE, utc_now), page_size=7,
                    mirror=build_stripe_mirror(hub.engine))
    poller.poll(lambda bodies: hub.store(SOURCE, bodies, {"x-finsync-poll": SOURCE}))
    settle(finance)


def settle(finance: Finance) -> None:
    """Run the pipeline until nothing waits, business time moving on to each retry (a
    document that arrived before what it needs is retried)."""
    clock = finance.hub.clock
    assert isinstance(clock, SimClock)
    _, waiting = finance.hub.run_until_settled(3_600, sleep=clock.tick)
    assert waiting.nothing, waiting


def poller_bodies(stripe: Company) -> list[bytes]:
    """What the real poller delivers for each event, in order: fetch-on-event answered as
    `StripeEvents` answers the poller."""
    api = StripeEvents(stripe)
    bodies = []
    for sent in stripe.sent:
        found = {f.key: api.fetch(f.object_type, f.object_id) for f in fetch_plan(sent.event)}
        current = found.pop(CURRENT, None)
        bodies.append(delivery_body(sent.event, current, sent.version, found))
    return bodies


def scrambled(finance: Finance, config: FinsyncConfig, stripe: Company, seed: int) -> None:
    """The poller's deliveries shuffled, a third of them twice, and half the events also as
    signed webhooks (which the mirror records too), in several runs of the pipeline."""
    hub, rand = finance.hub, random.Random(seed)
    bodies = poller_bodies(stripe)
    bodies += rand.sample(bodies, len(bodies) // 3)
    rand.shuffle(bodies)
    intake = build_webhooks(config, hub.engine, hub.clock)[SOURCE]
    mirror = build_stripe_mirror(hub.engine)
    hooks = [webhook(s.event) for s in rand.sample(stripe.sent, len(stripe.sent) // 2)]
    for start in range(0, len(bodies), 9):
        batch = bodies[start:start + 9]
        hub.intake.store([RawIn(SOURCE, b, {"x-finsync-poll": SOURCE}) for b in batch])
        mirror.record(SOURCE, batch)  # as the poller does once the hub committed
        for body in hooks[start // 9::6]:
            stamp = int(hub.clock().timestamp())
            intake.receive(body, {"Stripe-Signature": header_for(SECRET, stamp, body)})
        hub.run_until_idle()
    settle(finance)
