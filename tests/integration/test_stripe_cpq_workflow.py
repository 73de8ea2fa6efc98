"""Must hold (issue 17): the reference workflow driven from CPQ reaches the same books as
today's demo, on localstripe.

The stack demo's year (`finsync.demo.stack`: Stripe's steps, the poller, a month-end close
each month, reconciliation) is run twice on one localstripe, each time into an empty hub
database (SQLite, PostgreSQL):
- directly: the demo's business calls Stripe itself (`StripeBusiness`), as the demo does;
- from CPQ: CPQ's approved version 1 enters the hub (the canonical intake, source "cpq"),
  the hub's order desk translates it with the shipped catalogue map and orders it from
  billing, the Stripe subscription platform (`connectors/stripe/orders.py`), which creates
  the subscription at Stripe. The customer reaches Stripe through the port's
  `upsert_customer` (called here: with a CRM owning customers, Stripe's own customer events
  would come back under Stripe's ids, see docs/cpq/stripe.md); the card is taken by
  Stripe's payment page, not by CPQ, so it is attached at Stripe directly.

The ERP is the embedded ledger rather than Tryton (the demo's ERP; tests/integration/
test_demo_stack.py runs that): what is compared is the same in both runs, finsync's books.
On localstripe the year is the first day's subscription, 500 seats x 120.00 = 60,000.00
invoiced and charged, and twelve closes recognising it day by day (the upgrade, usage, SLA
credit and refund need Prices, meters, credit notes and test clocks: skipped in both runs,
as the demo reports). Compared: each step's outcome, Stripe's invoices (amounts, status),
the trial balance at every month-end, revenue recognised per close, reconciliation (every
check's items, breaks and variance) and the exception queue.
"""

from __future__ import annotations

import json
import shutil
import tomllib
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from finsync.audit.signing import write_new_key
from finsync.bootstrap import Finance, build_engine, build_finance, start_stripe_poll_at
from finsync.config import FinsyncConfig, parse_config
from finsync.connectors.ports import DeliveryContext
from finsync.demo import report as embedded
from finsync.demo.clock import SimClock
from finsync.demo.stack import StackYear
from finsync.demo.stack_config import ENTITY, SIGNING_KEY, SOURCE, StackSettings, config_text
from finsync.demo.stripe_api import StripeApi
from finsync.demo.stripe_steps import SEATS, Capabilities, StripeBusiness
from finsync.domain import codec
from finsync.domain.catalog import BillingFrequency
from finsync.domain.clock import month_period
from finsync.domain.commercial import (
    CommercialContract,
    CommercialKind,
    CommercialLine,
    ProrationTerms,
)
from finsync.domain.events import CommercialContractApproved
from finsync.domain.money import Money
from finsync.domain.party import CustomerAccount, PostalAddress
from finsync.domain.proration import add_months
from finsync.recon.service import net_revenue_accounts
from finsync.storage.raw_log import RawIn
from tests.builders import envelope
from tests.conftest import empty_postgres
from tests.stripekit import API_KEY, Localstripe

KEY_ENV = "FINSYNC_TEST_STRIPE_KEY"
CONTRACT, QUOTE, ACCOUNT = "ctr-acme", "q-acme-1", "acct-acme"
CUSTOMER = CustomerAccount(ACCOUNT, "Acme Analytics Customer Ltd", ENTITY, "USD", "US",
                           address=PostalAddress(("1 Main Street",), "New York", "10001"),
                           billing_region="NY")


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, API_KEY)


def year_config(workdir: Path, stripe_url: str, db_url: str, *,
                cpq: bool = False) -> FinsyncConfig:
    """The stack demo's `finsync.toml`, with the embedded ledger as the ERP and Plans named
    as prices (localstripe has no Prices API); with `cpq`, CPQ owns the commercial domain
    and its approved versions (through the canonical intake) are routed to billing, the
    Stripe account, by the hub's order desk with the shipped catalogue map (SEATS-ANNUAL is
    billing's price_seat_annual, the demo's Plan)."""
    years = (datetime.now(UTC).year, datetime.now(UTC).year + 1)
    settings = StackSettings(stripe_url, "http://127.0.0.1:9", "unused", db_url,
                             stripe_key_env=KEY_ENV)
    text = config_text(settings, years, meters=False)
    ledger, revrec = text.index("[systems.ledger]"), text.index("[systems.revrec]")
    text = text[:ledger] + '[systems.ledger]\nrole = "ledger"\nconnector = "embedded"\n\n' \
        + text[revrec:]
    text = text.replace("poll_on_run = true\n", 'poll_on_run = true\nprice_parameter = "plan"\n',
                        1)
    if cpq:
        text = text.replace('commercial = "stripe"\n', 'commercial = "cpq"\n', 1)
        text = text.replace('revrec = "canonical"\n', 'revrec = "canonical"\ncanonical = '
                            '"canonical"\n', 1)
        text = text.replace("[routes]\n", '[routes]\n"commercial_contract.approved" = '
                            '["billing"]\n', 1)
    (workdir / "var").mkdir(parents=True, exist_ok=True)
    write_new_key(workdir / SIGNING_KEY)
    (workdir / "finsync.toml").write_text(text)
    return parse_config(tomllib.loads(text), workdir.resolve())


def ctx(key: str) -> DeliveryContext:
    return DeliveryContext(key, f"evt-{key}", QUOTE)


class CpqBusiness(StripeBusiness):
    """The demo's business with its customer from the customer master and its
    subscription from CPQ's approved order, both through the subscription platform."""

    def __init__(self, api: StripeApi, can: Capabilities, finance: Finance) -> None:
        super().__init__(api, can)
        self.finance = finance
        self.platform = finance.ports.platforms["billing"]
        self.order: CommercialContract | None = None

    def open_account(self, start: datetime) -> datetime:
        self._catalogue()
        customer = self.platform.upsert_customer(CUSTOMER, ctx("customer-v1")).external_id
        self.ids.customer = customer
        # the card comes from Stripe's payment page, not from CPQ
        self._post("/v1/payment_methods/pm_card_visa/attach", "card", {"customer": customer})
        self._post(f"/v1/customers/{customer}", "card_default",
                   {"invoice_settings[default_payment_method]": "pm_card_visa"})
        created = int(self.api.get(f"/v1/customers/{customer}")["created"])
        return datetime.fromtimestamp(created, UTC)

    def subscribe(self) -> str:
        """CPQ approves version 1 (500 seats a year from today); the hub's order desk
        translates it with the catalogue map and orders it from billing (the port)."""
        start = self._today()
        end = add_months(start, 12)
        price = Money.of("120.00", "USD")
        seats = CommercialLine("ql-seats", "SEATS-ANNUAL", SEATS, price, Decimal(0), price,
                               start, end)
        approved = CommercialContract(
            CONTRACT, 1, CommercialKind.NEW, QUOTE, ACCOUNT, ACCOUNT, ENTITY, "USD", start,
            end, start, BillingFrequency.ANNUAL, (seats,), ProrationTerms.INVOICE_NOW)
        event = CommercialContractApproved(approved)
        ref = event.aggregate()
        body = envelope(event.name, f"cpq-{CONTRACT}-v1", (ref.type, ref.id, ref.version),
                        codec.encode_event(event), correlation_id=QUOTE, source="cpq",
                        at=datetime.combine(start, datetime.min.time(), UTC))
        self.finance.hub.intake.store([RawIn("canonical", json.dumps(body).encode(), {})])
        self.finance.hub.run_until_idle()
        found = self.api.get("/v1/subscriptions", {"customer": self.ids.customer})["data"]
        if len(found) != 1:
            raise AssertionError(f"the order desk made {len(found)} subscriptions")
        sub = found[0]
        self.ids.subscription = str(sub["id"])
        self.ids.seat_item = str(sub["items"]["data"][0]["id"])
        self.ids.first_invoice = str(sub["latest_invoice"])
        self.order = approved
        return f"{sub['id']}: CPQ quote {QUOTE}, {SEATS} seats, ordered by the hub"

    def _today(self) -> date:
        created = int(self.api.get(f"/v1/customers/{self.ids.customer}")["created"])
        return datetime.fromtimestamp(created, UTC).date()


Business = Callable[[StripeApi, Capabilities, Finance], StripeBusiness]


def direct(api: StripeApi, can: Capabilities, finance: Finance) -> StripeBusiness:
    # no route sends the commercial layer's events to Stripe: it is no platform here
    assert finance.ports.platforms == {}
    return StripeBusiness(api, can)


def run_year(config: FinsyncConfig, stripe_url: str, business_of: Business
             ) -> tuple[dict[str, Any], StripeBusiness, Finance]:
    """The stack demo's year (as `demo.stack._run` plays it) and finsync's figures of it,
    without ids (each run makes its own customer, subscription and invoice at Stripe)."""
    api = StripeApi(stripe_url, API_KEY)
    can = Capabilities.probe(api)
    now = datetime.now(UTC).replace(microsecond=0)
    clock = SimClock(now)
    engine = build_engine(config)
    finance = build_finance(config, engine=engine, clock=clock)
    try:
        business = business_of(api, can, finance)
        start = business.open_account(now)
        start_stripe_poll_at(config, engine, SOURCE, int(start.timestamp()) - 1)
        year = StackYear(finance, business, clock, None).run(start)
        as_of = month_period(year.closes[-1]["period"]).end - timedelta(days=1)
        ledger = finance.ports.ledger()
        month_ends = [month_period(c["period"]).end - timedelta(days=1) for c in year.closes]
        revenue_accounts = net_revenue_accounts(finance.ports.revenue().account_map())
        queue = embedded.exceptions(finance.triage.listing(status=None))
        figures = {
            "steps": [(s["key"], s["status"]) for s in year.steps],
            "invoices": [(i["total"], i["amount_paid"], i["status"])
                         for i in business.invoices()],
            "closes": [(c["period"], c["status"], len(c["journals"])) for c in year.closes],
            "trial_balances": [sorted((b.account, str(b.balance))
                                      for b in ledger.trial_balance(ENTITY, day))
                               for day in month_ends],
            "receivables": sorted(str(r.open_amount) for r in ledger.receivables(ENTITY, as_of)),
            "revenue_by_month": {m: str(a.amount) for m, a in embedded.revenue_by_period(
                year.journals, revenue_accounts).items()},
            "reconciliation": embedded.reconciliation(finance.recon.run(as_of)),
            "exceptions": (queue["open"], queue["by_class"]),
        }
        return figures, business, finance
    finally:
        finance.ports.close()
        engine.dispose()


def test_the_year_from_cpq_reaches_the_demos_books(localstripe: Localstripe, db_url: str,
                                                    tmp_path: Path) -> None:
    second = db_url
    if db_url.startswith("sqlite:///"):  # an untouched copy of the migrated database
        second = f"sqlite:///{tmp_path / 'cpq.db'}"
        shutil.copyfile(db_url.removeprefix("sqlite:///"), tmp_path / "cpq.db")
    localstripe.reset(None)
    demo, _, _ = run_year(year_config(tmp_path / "direct", localstripe.base_url, db_url),
                          localstripe.base_url, direct)
    localstripe.reset(None)
    if second == db_url:
        empty_postgres(db_url)
    config = year_config(tmp_path / "cpq", localstripe.base_url, second, cpq=True)
    cpq, business, _ = run_year(config, localstripe.base_url, CpqBusiness)

    assert cpq == demo
    # what the demo's year is on localstripe: the seats ran, 60,000.00 invoiced and paid,
    # twelve closes, reconciled to zero, nothing left open
    assert ("subscribe", "ran") in cpq["steps"] and ("upgrade", "skipped") in cpq["steps"]
    assert cpq["invoices"] == [(6_000_000, 6_000_000, "paid")]
    assert [c[1] for c in cpq["closes"]] == ["closed"] * 12
    assert cpq["reconciliation"]["total_variance"] == {"USD": "0.00"}
    # e.g. a year from 6 December: the first close recognises 60,000.00 x 26/365 = 4,273.97
    # (6-31 December), the trial balance then cash 60,000.00, deferred revenue 55,726.03
    balances = dict(cpq["trial_balances"][0])
    assert balances["1000"] == "60000.00 USD"
    assert Decimal(balances["2400"].split()[0]) + Decimal(balances["4000"].split()[0]) == \
        Decimal("-60000.00")
    assert cpq["exceptions"][0] == 0

    # and the subscription at Stripe is CPQ's order, read back line by line
    assert isinstance(business, CpqBusiness) and business.order is not None
    sub = localstripe.call("GET", f"/v1/subscriptions/{business.ids.subscription}")
    assert sub["metadata"] == {"finsync_contract_id": CONTRACT, "finsync_quote_id": QUOTE,
                               "finsync_customer_id": ACCOUNT, "finsync_cpq_version": "1"}
    engine = build_engine(config)
    try:
        finance = build_finance(config, engine=engine)
        read = finance.ports.platforms["billing"].contract(CONTRACT)
    finally:
        engine.dispose()
    assert read is not None and read.customer_id == ACCOUNT
    assert [(ln.line_id, ln.price_id, ln.quantity, ln.unit_price) for ln in read.lines] == \
        [("ql-seats", "price_seat_annual", SEATS, Money.of("120.00", "USD"))]
