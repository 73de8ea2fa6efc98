"""The reference workflow (DESIGN §4) as the business does it in Stripe, step by step.

The customer takes 500 seats a year at 120.00 USD; 134 days later (15 May, counted from
1 January as in the embedded demo) it upgrades to 800 seats and adds the premium analytics
module (24,000.00 USD a year), prorated and invoiced at once; its API calls above the
included million are metered each month (the embedded demo's volumes); on day 223 an SLA
breach yields a 5,000.00 USD credit note on the first invoice, and on day 247 the customer
takes that credit in cash (a refund of the first payment, the balance debited back).

Rules:
- What this Stripe can do is asked first, read-only (`Capabilities.probe`: the Prices API,
  credit notes, meters, test clocks each answer a one-item list, or not). localstripe has
  none of the four; Stripe's test mode has all.
- A step runs only when everything it needs is there; otherwise it is skipped and says which
  capability is missing and what Stripe answered. A step is never replaced by another that
  this Stripe can do (a seat change without proration is not the upgrade), and a step that
  depends on a skipped one is skipped with it (no refund of a credit never issued).
- Stripe's time moves only with a test clock: the customer is put on one, and the clock is
  moved to each step's moment and to each month's end. Without one, only the first day's
  steps can run.
- Products keep the embedded catalogue's ids and prices are found again by lookup key, so a
  second run on the same test account reuses its catalogue; every POST has an idempotency
  key of the run and the step.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from finsync.demo.stripe_api import StripeApi, StripeCallError

PRICES, CREDIT_NOTES, METERS, TEST_CLOCKS = ("Prices API", "credit notes", "meters",
                                             "test clocks")
PROBES = {PRICES: "/v1/prices", CREDIT_NOTES: "/v1/credit_notes", METERS: "/v1/billing/meters",
          TEST_CLOCKS: "/v1/test_helpers/test_clocks"}
SEATS, UPGRADED_SEATS = 500, 800
SEAT_CENTS, ANALYTICS_CENTS, SLA_CREDIT_CENTS = 12_000, 2_400_000, 500_000
INCLUDED_CALLS = 1_000_000
OVERAGE_CENT_DECIMAL = "0.2"  # 0.002 USD a call over the included million
EVENT_NAME = "finsync_demo_api_calls"
CLOCK_WAIT_S = 180.0  # how long a test clock may take to reach its time


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What this Stripe lacks, each with what it answered when asked."""

    missing: Mapping[str, str]

    @classmethod
    def probe(cls, api: StripeApi) -> Capabilities:
        answers = {name: api.available(path) for name, path in PROBES.items()}
        return cls({name: why for name, why in answers.items() if why is not None})

    def has(self, capability: str) -> bool:
        return capability not in self.missing

    def lacking(self, needs: tuple[str, ...]) -> str | None:
        """Which of `needs` this Stripe lacks (what it answered is in `missing`), or None."""
        gone = [need for need in needs if need in self.missing]
        return ", ".join(gone) or None


@dataclass
class Ids:
    """What the steps made at Stripe, by name."""

    run: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    clock: str | None = None
    customer: str = ""
    subscription: str = ""
    seat_item: str = ""
    usage_subscription: str | None = None
    first_invoice: str = ""
    prices: dict[str, str] = field(default_factory=dict)


class StripeBusiness:
    """The business's calls to Stripe for each step of the year."""

    def __init__(self, api: StripeApi, capabilities: Capabilities) -> None:
        self.api, self.can = api, capabilities
        self.ids = Ids()

    # -- the first day ------------------------------------------------------------------
    def open_account(self, start: datetime) -> datetime:
        """The catalogue, a test clock at `start` (when there are test clocks) and the
        customer with a card; returns Stripe's time of the customer."""
        self._catalogue()
        params: dict[str, object] = {
            "name": "Acme Analytics Customer Ltd", "email": "ap@acme.example",
            "payment_method": "pm_card_visa",
            "invoice_settings[default_payment_method]": "pm_card_visa"}
        if self.can.has(TEST_CLOCKS):
            clock = self._post("/v1/test_helpers/test_clocks", "clock",
                               {"frozen_time": int(start.timestamp()),
                                "name": f"finsync demo {self.ids.run}"})
            self.ids.clock = str(clock["id"])
            params["test_clock"] = self.ids.clock
        customer = self._post("/v1/customers", "customer", params)
        self.ids.customer = str(customer["id"])
        return datetime.fromtimestamp(int(customer["created"]), UTC) if self.ids.clock is None \
            else start

    def subscribe(self) -> str:
        """500 seats a year, invoiced and charged at once."""
        item = "items[0][price]" if self.can.has(PRICES) else "items[0][plan]"
        sub = self._post("/v1/subscriptions", "subscribe", {
            "customer": self.ids.customer, item: self.ids.prices["seat"],
            "items[0][quantity]": SEATS})
        self.ids.subscription = str(sub["id"])
        self.ids.seat_item = str(sub["items"]["data"][0]["id"])
        self.ids.first_invoice = str(_id(sub.get("latest_invoice")))
        return (f"{self.ids.subscription}: {SEATS} seats x {SEAT_CENTS / 100:,.2f} USD a year; "
                f"invoice {self.ids.first_invoice} charged to the card")

    def subscribe_usage(self) -> str:
        """The metered API calls: a monthly subscription of their own (Stripe bills every
        item of a subscription on one interval; the seats are yearly)."""
        sub = self._post("/v1/subscriptions", "subscribe_usage", {
            "customer": self.ids.customer, "items[0][price]": self.ids.prices["usage"]})
        self.ids.usage_subscription = str(sub["id"])
        return f"{self.ids.usage_subscription}: API calls over the included million, monthly"

    # -- later in the year --------------------------------------------------------------
    def upgrade(self) -> str:
        self._post(f"/v1/subscriptions/{self.ids.subscription}", "upgrade", {
            "items[0][id]": self.ids.seat_item, "items[0][quantity]": UPGRADED_SEATS,
            "items[1][price]": self.ids.prices["analytics"], "items[1][quantity]": 1,
            "proration_behavior": "always_invoice"})
        return (f"{self.ids.subscription}: {SEATS} -> {UPGRADED_SEATS} seats and premium "
                "analytics, prorated and invoiced at once")

    def meter(self, month: int, calls: int, at: datetime) -> dict[str, Any]:
        """The month's calls over the included million, as one meter event (the business
        counts the included million itself); returns the event as Stripe took it."""
        over = max(calls - INCLUDED_CALLS, 0)
        return self._post("/v1/billing/meter_events", f"usage_{month}", {
            "event_name": EVENT_NAME, "payload[stripe_customer_id]": self.ids.customer,
            "payload[value]": over, "timestamp": int(at.timestamp()),
            "identifier": f"finsync-demo-{self.ids.run}-{month:02d}"})

    def sla_credit(self) -> str:
        line = self.api.get(f"/v1/invoices/{self.ids.first_invoice}/lines",
                            {"limit": 1})["data"][0]
        note = self._post("/v1/credit_notes", "sla_credit", {
            "invoice": self.ids.first_invoice, "lines[0][type]": "invoice_line_item",
            "lines[0][invoice_line_item]": line["id"],
            "lines[0][amount]": SLA_CREDIT_CENTS, "credit_amount": SLA_CREDIT_CENTS,
            "reason": "product_unsatisfactory", "memo": "SLA credit, case sla_acme_0812"})
        return f"{note['id']}: 5,000.00 USD off {self.ids.first_invoice}, to the balance"

    def refund(self) -> str:
        intent = self._first_payment_intent()
        refund = self._post("/v1/refunds", "refund", {
            "payment_intent": intent, "amount": SLA_CREDIT_CENTS,
            "metadata[reason]": "sla_credit_paid_out"})
        self._post(f"/v1/customers/{self.ids.customer}/balance_transactions", "balance", {
            "amount": SLA_CREDIT_CENTS, "currency": "usd",
            "description": f"SLA credit paid out in cash ({refund['id']})"})
        return f"{refund['id']}: 5,000.00 USD back to the card of {intent}; balance debited"

    # -- time -----------------------------------------------------------------------------
    def advance(self, moment: datetime) -> None:
        """Move Stripe's test clock to `moment` and wait until Stripe is there."""
        if self.ids.clock is None:
            return
        path = f"/v1/test_helpers/test_clocks/{self.ids.clock}"
        now = int(self.api.get(path)["frozen_time"])
        target = int(moment.timestamp())
        if target <= now:
            return
        self._post(f"{path}/advance", f"advance_{target}", {"frozen_time": target})
        deadline = time.monotonic() + CLOCK_WAIT_S
        while self.api.get(path).get("status") != "ready":
            if time.monotonic() > deadline:
                raise StripeCallError("GET", path, 200, f"the test clock did not reach "
                                      f"{moment.isoformat()} in {CLOCK_WAIT_S:.0f} s")
            time.sleep(2)

    # -- reading back ---------------------------------------------------------------------
    def invoices(self) -> list[dict[str, Any]]:
        """The customer's invoices, oldest first."""
        found = self.api.get("/v1/invoices", {"customer": self.ids.customer, "limit": 100})
        return sorted(found.get("data", []), key=lambda i: (i.get("created", 0), i["id"]))

    # -- the catalogue --------------------------------------------------------------------
    def _catalogue(self) -> None:
        self._product("prod_platform_seat", "Platform seats")
        if not self.can.has(PRICES):  # an emulator with Plans only (localstripe)
            self._plan("price_seat_annual", "prod_platform_seat", SEAT_CENTS)
            self.ids.prices["seat"] = "price_seat_annual"
            return
        self.ids.prices["seat"] = self._price("finsync_demo_seat_annual", {
            "product": "prod_platform_seat", "unit_amount": SEAT_CENTS,
            "recurring[interval]": "year"})
        self._product("prod_premium_analytics", "Premium analytics module")
        self.ids.prices["analytics"] = self._price("finsync_demo_analytics_annual", {
            "product": "prod_premium_analytics", "unit_amount": ANALYTICS_CENTS,
            "recurring[interval]": "year"})
        if self.can.has(METERS):
            self._product("prod_usage_overage", "API calls over the included volume")
            self.ids.prices["usage"] = self._price("finsync_demo_api_calls_over", {
                "product": "prod_usage_overage", "unit_amount_decimal": OVERAGE_CENT_DECIMAL,
                "recurring[interval]": "month", "recurring[usage_type]": "metered",
                "recurring[meter]": self._meter()})

    def _product(self, product_id: str, name: str) -> None:
        try:
            self.api.get(f"/v1/products/{product_id}")
        except StripeCallError as exc:
            if exc.status != 404:
                raise
            self._post("/v1/products", f"product_{product_id}", {"id": product_id,
                                                                 "name": name})

    def _plan(self, plan_id: str, product: str, cents: int) -> None:
        self._post("/v1/plans", f"plan_{plan_id}", {
            "id": plan_id, "product": product, "amount": cents, "currency": "usd",
            "interval": "year"})

    def _price(self, lookup_key: str, params: Mapping[str, object]) -> str:
        found = self.api.get("/v1/prices", [("lookup_keys[]", lookup_key), ("active", True)])
        if found.get("data"):
            return str(found["data"][0]["id"])
        price = self._post("/v1/prices", f"price_{lookup_key}", {
            **params, "currency": "usd", "lookup_key": lookup_key})
        return str(price["id"])

    def _meter(self) -> str:
        listed = self.api.get("/v1/billing/meters", {"status": "active", "limit": 100})
        for meter in listed.get("data", []):
            if meter.get("event_name") == EVENT_NAME:
                return str(meter["id"])
        made = self._post("/v1/billing/meters", "meter", {
            "display_name": "finsync demo API calls", "event_name": EVENT_NAME,
            "default_aggregation[formula]": "sum",
            "customer_mapping[event_payload_key]": "stripe_customer_id",
            "customer_mapping[type]": "by_id", "value_settings[event_payload_key]": "value"})
        return str(made["id"])

    def _first_payment_intent(self) -> str:
        invoice = self.api.get(f"/v1/invoices/{self.ids.first_invoice}",
                               [("expand[]", "payments")])
        for entry in invoice.get("payments", {}).get("data", []):
            intent = entry.get("payment", {}).get("payment_intent")
            if intent:
                return str(_id(intent))
        return str(_id(invoice.get("payment_intent")))  # the older shape

    def _post(self, path: str, step: str, params: Mapping[str, object]) -> dict[str, Any]:
        return self.api.post(path, params, f"finsync-demo-{self.ids.run}-{step}")


def _id(value: object) -> object:
    return value.get("id") if isinstance(value, Mapping) else value


def day_of(moment: datetime) -> date:
    return moment.astimezone(UTC).date()
