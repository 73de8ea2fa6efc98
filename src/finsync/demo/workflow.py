"""The reference workflow (DESIGN §4) as a year of business on the embedded systems.

A B2B customer on an annual per-seat subscription with usage overage upgrades mid-quarter
from 500 to 800 seats and adds the premium analytics module; usage is billed monthly in
arrears; an SLA breach yields a credit memo; payments and a refund; twelve month-ends, each
closed. The year starts in CPQ (`demo.cpq`): the customer, the original order, the upgrade
and the add-on are CPQ versions 1..3 stored on the CPQ source (finsync's own CPQ JSON), and
the hub orders each from billing (the billing target: `apply_order`); billing prices and
invoices them. Billing's events reach the hub through a simulated webhook channel that
injects the faults DESIGN §5 names:
- the January payment's webhook is delivered twice (de-duplication counts it);
- the upgrade's contract event (v2) is delayed behind a co-terminated add-on (v3) and the
  invoices of both: v3 is parked by the sequencer, and the revenue engine gets the invoices
  before the amendments they bill (`missing_revrec_reference`, retried until they exist);
- a payment dated 30 March is recorded by billing after March was closed
  (`closed_period`), re-routed to April by one person and approved by another;
- a webhook whose body is not JSON (`mapping_error`), ignored by operations with a reason.
Every person acts as an authenticated principal: an OS login mapped in the demo's `[auth]`
(`run.py`), with the scopes of the job (the clerk may not approve; the controller may).
Time is simulated: one clock (`clock.SimClock`) drives billing, the hub and the ERP.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from finsync.auth.local import ForbiddenError
from finsync.auth.principal import EXCEPTIONS_APPROVE, Principal
from finsync.bootstrap import Finance, cpq_body
from finsync.demo import cpq
from finsync.demo.clock import SimClock
from finsync.demo.cpq import CONTRACT, YEAR
from finsync.domain.commercial import CommercialContract
from finsync.domain.errors import ExceptionClass
from finsync.domain.events import EventType
from finsync.domain.invoice import UsageRecord
from finsync.domain.money import Money
from finsync.domain.party import CustomerAccount
from finsync.domain.status import DeliveryStatus
from finsync.hub.acceptance import Outcome
from finsync.systems.billing.credit import CreditReason, IssueCreditMemo
from finsync.systems.billing.cycle import add_months
from finsync.systems.billing.handler import Command, RecordUsage, RunClock
from finsync.systems.billing.payment import PayInvoice, PaymentResult, RefundPayment
from finsync.systems.billing.service import BillingService
from finsync.triage.service import SegregationOfDutiesError

SLA_CASE = "sla_acme_0812"
# The logins of the demo's people; run.py maps each to a principal under [auth].
CLERK_LOGIN, CONTROLLER_LOGIN, OPS_LOGIN = "clerk", "controller", "ops"
# The faults the webhook channel injects (the report checks each against its control).
DUPLICATE = "payment webhook delivered twice"
OUT_OF_ORDER = "amendment v2 delivered after v3 and both invoices"
LATE_PAYMENT = "payment dated in a closed period"
NOT_JSON = "webhook body that is not JSON"
DELIVERED = "delivered"  # Hub.transaction_status: every delivery of the correlation done
# Monthly API calls; 1,000,000 a month are included, the rest costs 0.002 each.
USAGE = (900_000, 3_000_000, 1_400_000, 1_800_000, 2_600_000, 2_200_000,
         1_900_000, 2_400_000, 1_700_000, 2_900_000, 3_100_000, 1_200_000)


@dataclass
class Journal:
    """What the demo did, for the report: faults injected, triage actions, closes."""

    faults: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    closes: list[dict[str, Any]] = field(default_factory=list)
    parked: int = 0
    cpq: list[CommercialContract] = field(default_factory=list)  # the versions CPQ sent


@dataclass(frozen=True, slots=True)
class People:
    """Who acts in the demo, as authenticated principals."""

    clerk: Principal
    controller: Principal
    ops: Principal


class Workflow:
    """The year, played on billing; its events reach the hub through a faulty channel."""

    def __init__(self, finance: Finance, billing: BillingService, clock: SimClock,
                 people: People) -> None:
        self.finance, self.billing, self.clock = finance, billing, clock
        self.people = people
        self.hub = finance.hub
        self.log = Journal()
        self._held: list[bytes] = []

    # -- the year -------------------------------------------------------------------
    def run(self) -> Journal:
        self._january()
        for month in range(1, 13):
            self._business_of(month)
            self._month_end(month)
        return self.log

    def _january(self) -> None:
        self.clock.to(cpq.START)
        self._approve(cpq.customer())
        self._approve(cpq.original_order())
        self._deliver()
        self._pay_open(date(YEAR, 1, 20), "pay_acme_0120", duplicate=True)

    def _business_of(self, month: int) -> None:
        self._do(RecordUsage(UsageRecord(f"use_{month:02d}", CONTRACT, "prod_usage_overage",
                                         USAGE[month - 1], date(YEAR, month, 15))))
        if month == 3:
            self._junk_webhook()  # and March's invoice is paid late: see _late_payment
        if month == 5:
            self._upgrade()
        if month == 6:
            self._pay_open(date(YEAR, 6, 10), "pay_acme_0610")
        if month == 8:
            self._sla_credit()
        if month == 9:
            self._refund()
        if month not in (3, 5, 6):
            self._pay_open(date(YEAR, month, 10), f"pay_acme_{month:02d}10")
        self._deliver()

    def _month_end(self, month: int) -> None:
        next_month = add_months(date(YEAR, month, 1), 1)
        self.clock.to(next_month, hour=0)
        self._do(RunClock(next_month))  # rates the month's usage, invoiced on the 1st
        self._deliver()
        self._settle()
        for entity in ("le_us", "le_eu"):
            result = self.finance.close.close(entity, f"{YEAR}-{month:02d}",
                                              self.people.controller.id)
            self.log.closes.append({"entity": entity, "period": result.period,
                                    "status": result.status,
                                    "journals": [j.id for j in result.journals]})
        if month == 3:
            self._late_payment()

    # -- the faults -------------------------------------------------------------------
    def _upgrade(self) -> None:
        """Upgrade on 15 May, a co-terminated add-on on 29 May; the upgrade's contract event
        is delivered last."""
        self.clock.to(cpq.UPGRADE_DAY)
        self._approve(cpq.upgrade())
        self._hold(EventType.CONTRACT_AMENDED)
        self._deliver()
        self.clock.to(cpq.ADD_ON_DAY)
        self._approve(cpq.add_on())
        self._deliver()
        self.log.faults.append({"fault": OUT_OF_ORDER,
                                "control": "sequencer + missing_revrec_reference retry"})
        self.clock.tick(120)
        self._release()

    def _late_payment(self) -> None:
        """A payment dated 30 March reaches billing on 3 April, after March closed."""
        self.clock.to(date(YEAR, 4, 3))
        self._pay_open(date(YEAR, 3, 30), "pay_acme_0330")
        self._settle()
        found = self.finance.triage.listing(exception_class=ExceptionClass.CLOSED_PERIOD)
        self.log.faults.append({"fault": LATE_PAYMENT,
                                "control": "closed_period + approved re-route"})
        for row in found:
            self._reroute_with_approval(row["id"])

    def _reroute_with_approval(self, exception_id: int) -> None:
        triage = self.finance.triage
        clerk, controller = self.people.clerk, self.people.controller
        asked = triage.reroute(exception_id, clerk, "March is closed: book in April")
        self.log.actions.append(_outcome(asked, clerk))
        # The clerk may not approve: neither without the scope, nor as the same person in
        # capitals holding it (ids are normalised).
        for attempt in (clerk, Principal.of(clerk.id.upper(), [EXCEPTIONS_APPROVE])):
            try:
                triage.approve(asked.action_id, attempt, "approving my own request")
            except (SegregationOfDutiesError, ForbiddenError) as exc:
                self.log.actions.append({"action": "approve", "by": attempt.id,
                                         "status": "refused", "code": exc.code,
                                         "detail": str(exc)})
        approved = triage.approve(asked.action_id, controller, "late bank file; April is fine")
        self.log.actions.append(_outcome(approved, controller))
        self._settle()

    def _junk_webhook(self) -> None:
        self.hub.store("billing", [b"{not json"], {"content-type": "text/plain"})
        self.hub.run_until_idle()
        for row in self.finance.triage.listing(exception_class=ExceptionClass.MAPPING_ERROR):
            outcome = self.finance.triage.ignore(row["id"], self.people.ops,
                                                 "truncated test webhook from the billing "
                                                 "sandbox; nothing to book")
            self.log.actions.append(_outcome(outcome, self.people.ops))
        self.log.faults.append({"fault": NOT_JSON,
                                "control": "raw kept + mapping_error, ignored with a reason"})

    # -- business steps -------------------------------------------------------------
    def _sla_credit(self) -> None:
        self.clock.to(date(YEAR, 8, 12))
        first = self.billing.invoices(contract_id=CONTRACT)[0]
        self._do(IssueCreditMemo(first.id, CreditReason.SLA_CREDIT, date(YEAR, 8, 12),
                                 Money.of("5000.00", "USD"), SLA_CASE))

    def _refund(self) -> None:
        """The customer asks for the SLA credit in cash."""
        self.clock.to(date(YEAR, 9, 5))
        self._do(RefundPayment("ref_acme_0905", "pay_acme_0120", Money.of("5000.00", "USD"),
                               date(YEAR, 9, 5), "sla_credit_paid_out"))

    def _pay_open(self, day: date, payment_id: str, *, duplicate: bool = False) -> None:
        self.clock.to(max(day, self.clock.now.date()))
        due = [s for s in self.billing.invoices(contract_id=CONTRACT)
               if s.amount_due.amount > 0 and s.issue_date <= day]
        for n, summary in enumerate(due):
            self._do(PayInvoice(f"{payment_id}_{n}" if n else payment_id, summary.id,
                                summary.amount_due, day, PaymentResult.SUCCEEDED, ""))
        self._deliver(duplicate_last=duplicate)
        if duplicate:
            self.log.faults.append({"fault": DUPLICATE,
                                    "control": "de-duplication by source event id"})

    def _do(self, command: Command) -> None:
        self.billing.execute(command)

    # -- the webhook channel --------------------------------------------------------
    def _hold(self, event_type: EventType) -> None:
        """Take the pending events of this type out of the next deliveries."""
        pending = self.billing.pending()
        for item in pending:
            if item.type == event_type:
                self._held.append(item.envelope.encode())
        self.billing.mark_published([i.seq for i in pending if i.type == event_type])

    def _release(self) -> None:
        self._send(self._held)
        self._held = []
        self._settle()

    def _deliver(self, *, duplicate_last: bool = False) -> None:
        while items := self.billing.pending():
            bodies = [item.envelope.encode() for item in items]
            self._send(bodies + bodies[-1:] if duplicate_last else bodies)
            self.billing.mark_published([item.seq for item in items])
        self.log.parked += self.hub.run_until_idle().outcomes.get(Outcome.PARKED, 0)

    def _send(self, bodies: Sequence[bytes]) -> None:
        self.hub.store("billing", bodies, {"x-finsync-demo": "webhook"})

    # -- CPQ ------------------------------------------------------------------------
    def _approve(self, document: CommercialContract | CustomerAccount) -> None:
        """CPQ sends what it approved (a contract version, or the account it is for) to the
        hub, which orders it from billing at once: billing is up all year in the demo."""
        body = cpq_body(document, self.clock())
        self.hub.store(cpq.SOURCE, [body], {"x-finsync-demo": "cpq"})
        self.log.parked += self.hub.run_until_idle().outcomes.get(Outcome.PARKED, 0)
        if isinstance(document, CommercialContract):
            self.log.cpq.append(document)
            ordered = self.hub.transaction_status(document.quote_id)
            if ordered["technical"] != DELIVERED:  # the year would go on without it
                raise RuntimeError(f"billing did not take CPQ version {document.version} "
                                   f"({document.quote_id}): {ordered}")

    def _settle(self, rounds: int = 50) -> None:
        """Run the hub until nothing is due, letting retry back-off elapse on the clock."""
        for _ in range(rounds):
            self.hub.run_until_idle()
            deliveries = self.hub.status()["deliveries"]
            if not deliveries.get(DeliveryStatus.PENDING) and not deliveries.get(
                    DeliveryStatus.IN_FLIGHT):
                return
            self.clock.tick(300)
        raise RuntimeError("the hub did not settle: deliveries are still pending")


def _outcome(outcome: Any, actor: Principal) -> dict[str, Any]:
    return {"action": outcome.action, "by": actor.id, "status": outcome.status,
            "exception_id": outcome.exception_id, "detail": outcome.detail}

