"""Executes a company plan on the embedded systems, day by day on a simulated clock.

Rules:
- Only billing's own commands make the business (`BillingService.execute`); billing's
  events reach the ledger and the revenue engine through the hub (its outbox is stored as
  raw events of source `billing`, then the pipeline maps, sequences and delivers them).
- Each day, in this order: the billing clock runs to the day (advance invoices, usage
  rating, renewals) when a subscription's cycle can fall on it; the customers that start
  that day subscribe; the planned changes of the day happen; the instalments due that day
  are paid; billing's events are delivered.
- Each month is closed in every legal entity once the billing clock ran to the 1st of the
  next month (so the month's usage is rated) and every delivery settled.
- A change billing refuses (its rules, not a defect) is counted under `refused` by change
  and the day goes on; a planned change with nothing to act on (an SLA credit before any
  invoice, a refund with no credit held) is counted under `skipped`.
- Retry back-off elapses on the simulated clock; a hub that does not settle is an error.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta

from finsync.bootstrap import Finance
from finsync.demo.clock import SimClock
from finsync.domain.catalog import BillingFrequency
from finsync.domain.contract import ContractLine, SubscriptionContract
from finsync.domain.errors import DomainError, FinsyncError
from finsync.domain.events import InvoiceIssued
from finsync.domain.invoice import UsageRecord
from finsync.domain.money import Money
from finsync.domain.party import CustomerAccount
from finsync.generator.plan import Change, CompanyPlan, CustomerPlan, Step, payments
from finsync.generator.receivable import Receivables
from finsync.systems.billing.amendment import AmendSubscription
from finsync.systems.billing.cancellation import CancelMode, CancelSubscription
from finsync.systems.billing.credit import CreditReason, IssueCreditMemo
from finsync.systems.billing.cycle import add_months
from finsync.systems.billing.edit import AddProduct, AddSeats, RemoveSeats
from finsync.systems.billing.handler import Command, RecordUsage, RegisterCustomer, RunClock
from finsync.systems.billing.payment import PayInvoice, RefundPayment
from finsync.systems.billing.service import BillingService
from finsync.systems.billing.subscription import CreateSubscription

Progress = Callable[[str, int, int], None]  # (stage, done, total)
# The generator closes its synthetic months itself: an automatic action, audited as such.
ACTOR = "system:generator"
SETTLE_ROUNDS = 80
SETTLE_TICK_S = 600
SEAT_PRICES = {"USD": "price_seat_annual", "EUR": "price_seat_annual_eur"}
MODULE_PRICE = "price_analytics_annual"
USAGE_PRICE = "price_usage_overage"
USAGE_PRODUCT = "prod_usage_overage"

log = logging.getLogger(__name__)


class NotSettledError(FinsyncError):
    code = "not_settled"


@dataclass
class Tally:
    """What the run did, counted from billing's events and the plan."""

    events: Counter[str] = field(default_factory=Counter)  # billing's, by type
    refused: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    closes: Counter[str] = field(default_factory=Counter)  # by close status
    commands: int = 0
    seconds: dict[str, float] = field(default_factory=dict)  # billing, hub, close

    @contextmanager
    def timed(self, part: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[part] = self.seconds.get(part, 0.0) + time.perf_counter() - start


class Driver:
    def __init__(self, plan: CompanyPlan, finance: Finance, billing: BillingService,
                 clock: SimClock, progress: Progress | None = None) -> None:
        self.plan, self.finance, self.billing, self.clock = plan, finance, billing, clock
        self.progress = progress or (lambda stage, done, total: None)
        self.books = Receivables()
        self.tally = Tally()
        self._due: list[tuple[date, int, str, Money | None]] = []  # the instalments heap
        self._customers = {c.n: c for c in plan.customers}
        # Billing cycles, usage periods and terms all fall on a subscription's start day of
        # the month (start days are 1..28, so never clamped): on other days its clock has
        # nothing to do, and is not run.
        self._anchor_days: set[int] = set()

    def run(self, entities: list[str]) -> Tally:
        starts: dict[date, list[CustomerPlan]] = {}
        for customer in self.plan.customers:
            starts.setdefault(customer.start, []).append(customer)
        steps: dict[date, list[Step]] = {}
        for step in self.plan.steps:
            steps.setdefault(step.on, []).append(step)
        days = (self.plan.end - self.plan.start).days
        day = self.plan.start
        for done in range(days + 1):
            if day.day == 1 and day > self.plan.start:
                self._month_end(day, entities)
            if day < self.plan.end:
                self._business_day(day, starts.get(day, []), steps.get(day, []))
            self.progress("days", done, days)
            day += timedelta(days=1)
        return self.tally

    # -- a day -----------------------------------------------------------------------
    def _business_day(self, day: date, starting: list[CustomerPlan], steps: list[Step]) -> None:
        self.clock.to(day, hour=0)
        if day.day in self._anchor_days:
            self._do(RunClock(day), "clock")
        self.clock.to(day, hour=9)
        for customer in starting:
            self._subscribe(customer)
            self._anchor_days.add(customer.start.day)
        for step in steps:
            command = self._command(step, day)
            if command is None:
                self.tally.skipped[step.change] += 1
            else:
                self._do(command, step.change)
        self._pay(day)
        self._deliver()

    def _month_end(self, first: date, entities: list[str]) -> None:
        self.clock.to(first, hour=0)
        self._do(RunClock(first), "clock")  # rates the month's usage
        self._deliver()
        self._settle()
        month = add_months(first, -1)
        for entity in entities:
            with self.tally.timed("close"):
                result = self.finance.close.close(entity, f"{month:%Y-%m}", ACTOR)
            self.tally.closes[result.status] += 1

    def _do(self, command: Command, what: str) -> None:
        try:
            with self.tally.timed("billing"):
                applied = self.billing.execute(command)
        except DomainError as exc:  # billing's rules refused it: it did not happen
            self.tally.refused[what] += 1
            log.debug("billing refused %s: %s", what, exc)
            return
        self.tally.commands += 1
        events = [e.event for e in applied.emitted]
        self.tally.events.update(type(e).__name__ for e in events)
        self.books.observe(events)
        for event in events:
            if isinstance(event, InvoiceIssued):
                self._schedule(event.invoice.id)

    # -- business ----------------------------------------------------------------------
    def _subscribe(self, customer: CustomerPlan) -> None:
        market = customer.market
        self._do(RegisterCustomer(CustomerAccount(customer.id, f"Customer {customer.n:06d}",
                                                  market.legal_entity, market.currency,
                                                  market.country)), "register")
        start = customer.start
        end = add_months(start, customer.term_months)
        contract = SubscriptionContract(customer.contract_id, customer.id, market.legal_entity,
                                        market.currency, start, end, customer.frequency,
                                        self._lines(customer, end))
        arrears = BillingFrequency.MONTHLY if customer.has_usage else None
        self._do(CreateSubscription(contract, f"ord_{customer.n:06d}", True, arrears,
                                    customer.term_months), "subscribe")

    def _lines(self, customer: CustomerPlan, end: date) -> tuple[ContractLine, ...]:
        lines = []
        if customer.has_seats:
            lines.append(self._line("ln_seats", SEAT_PRICES[customer.market.currency],
                                    customer.seats, customer.start, end))
        if customer.has_module:
            lines.append(self._line("ln_analytics", MODULE_PRICE, 1, customer.start, end))
        if customer.has_usage:
            lines.append(self._line("ln_usage", USAGE_PRICE, 0, customer.start, end))
        return tuple(lines)

    def _line(self, line_id: str, price_id: str, quantity: int, start: date,
              end: date) -> ContractLine:
        price = self.billing.config.catalog.plan(price_id).price
        return ContractLine(line_id, price.product_id, price_id, quantity, price.unit_amount,
                            start, end)

    def _command(self, step: Step, day: date) -> Command | None:
        customer = self._customers[step.customer]
        contract = customer.contract_id
        match step.change:
            case Change.UPGRADE:
                return AmendSubscription(step.id, contract, day,
                                         (AddSeats("ln_seats", step.quantity),), "upgrade")
            case Change.DOWNGRADE:
                return AmendSubscription(step.id, contract, day,
                                         (RemoveSeats("ln_seats", step.quantity),), "downgrade")
            case Change.ADD_ON:
                return AmendSubscription(step.id, contract, day, (
                    AddProduct("ln_addon", MODULE_PRICE, 1),), "co-terminated add-on")
            case Change.SLA_CREDIT:
                return self._sla_credit(customer, step, day)
            case Change.REFUND:
                held = self.books.credit_held(customer.id)
                if held is None:
                    return None
                return RefundPayment(step.id, held[0], held[1], day, "sla_credit_paid_out")
            case Change.CANCEL_NOW:
                return CancelSubscription(step.id, contract, day,
                                          CancelMode.IMMEDIATE_WITH_REFUND, "churned")
            case Change.CANCEL_AT_TERM_END:
                return CancelSubscription(step.id, contract, day, CancelMode.AT_TERM_END,
                                          "will not renew")
            case Change.USAGE:
                return RecordUsage(UsageRecord(step.id, contract, USAGE_PRODUCT, step.quantity,
                                               day))
        return None

    def _sla_credit(self, customer: CustomerPlan, step: Step, day: date) -> Command | None:
        target = self.books.to_credit(customer.id, day)
        if target is None:
            return None
        share = Money(target.invoice.subtotal.amount * step.quantity / 100,
                      target.invoice.currency).quantize()
        amount = min(share, target.creditable, key=lambda m: m.amount)
        if amount.amount <= 0:
            return None
        return IssueCreditMemo(target.invoice.id, CreditReason.SLA_CREDIT, day, amount, step.id)

    # -- payments ----------------------------------------------------------------------
    def _schedule(self, invoice_id: str) -> None:
        invoice = self.books.invoices[invoice_id].invoice
        customer = self._customers[int(invoice.customer_id.removeprefix("cus_"))]
        for k, part in enumerate(payments(self.plan.seed, customer.payer, invoice.id,
                                          invoice.issue_date, invoice.due_date,
                                          invoice.total)):
            heapq.heappush(self._due, (part.on, k, invoice.id, part.amount))

    def _pay(self, day: date) -> None:
        while self._due and self._due[0][0] <= day:
            _, k, invoice_id, planned = heapq.heappop(self._due)
            due = self.books.due(invoice_id)
            amount = due if planned is None else min(planned, due, key=lambda m: m.amount)
            if amount.amount <= 0:
                continue
            number = self.books.invoices[invoice_id].invoice.number
            self._do(PayInvoice(f"pay_{number}_{k}", invoice_id, amount, day), "payment")

    # -- the hub -----------------------------------------------------------------------
    def _deliver(self) -> None:
        hub = self.finance.hub
        with self.tally.timed("hub"):
            while items := self.billing.pending(hub.settings.intake_batch_size):
                hub.store("billing", [item.envelope.encode() for item in items],
                          {"x-finsync-generator": "billing outbox"})
                self.billing.mark_published([item.seq for item in items])
            hub.run_until_idle()

    def _settle(self) -> None:
        """Run the hub until nothing waits, letting retry back-off elapse on the clock."""
        hub = self.finance.hub
        for _ in range(SETTLE_ROUNDS):
            with self.tally.timed("hub"):
                hub.run_until_idle()
            if hub.waiting().nothing:
                return
            self.clock.tick(SETTLE_TICK_S)
        raise NotSettledError(f"the hub did not settle: {hub.waiting().as_json()}")
