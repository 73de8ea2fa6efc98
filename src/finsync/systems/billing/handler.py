"""One entry point for every billing command: `handle(state, command) -> Outcome`.

Rules:
- Each command type has exactly one handler; an unknown command is a programmer error.
- Handlers are pure: the same state and command always give the same outcome, and a command
  that raises changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from finsync.domain.invoice import UsageRecord
from finsync.domain.party import CustomerAccount
from finsync.systems.billing import clock
from finsync.systems.billing.amendment import AmendSubscription, amend_subscription
from finsync.systems.billing.cancellation import CancelSubscription, cancel_subscription
from finsync.systems.billing.credit import IssueCreditMemo, issue_credit_memo
from finsync.systems.billing.held import RetryHeldInvoices, retry_all, retry_held_invoices
from finsync.systems.billing.one_off import ChargeOneOff, charge_one_off
from finsync.systems.billing.outcome import Outcome
from finsync.systems.billing.payment import PayInvoice, RefundPayment, pay_invoice, refund_payment
from finsync.systems.billing.prepaid import PurchasePrepaid, purchase_prepaid
from finsync.systems.billing.state import BillingState
from finsync.systems.billing.subscription import (
    CreateSubscription,
    RenewSubscription,
    create_subscription,
    register_customer,
    renew_subscription,
)
from finsync.systems.billing.usage import record_usage


@dataclass(frozen=True, slots=True)
class RecordUsage:
    record: UsageRecord


@dataclass(frozen=True, slots=True)
class RegisterCustomer:
    customer: CustomerAccount


@dataclass(frozen=True, slots=True)
class RunClock:
    until: date


def run_clock(state: BillingState, command: RunClock) -> Outcome:
    """Held drafts retried first (they are older than anything the run issues), then every
    step due up to the command's date."""
    retried = retry_all(state)
    return retried.then(clock.run(retried.state, command.until))


Command = (RegisterCustomer | CreateSubscription | AmendSubscription | CancelSubscription
           | RenewSubscription | PurchasePrepaid | RecordUsage | IssueCreditMemo | PayInvoice
           | RefundPayment | RunClock | RetryHeldInvoices | ChargeOneOff)

_HANDLERS: dict[type[Any], Callable[[BillingState, Any], Outcome]] = {
    RegisterCustomer: lambda s, c: register_customer(s, c.customer),
    CreateSubscription: create_subscription,
    AmendSubscription: amend_subscription,
    CancelSubscription: cancel_subscription,
    RenewSubscription: renew_subscription,
    PurchasePrepaid: purchase_prepaid,
    RecordUsage: lambda s, c: record_usage(s, c.record),
    IssueCreditMemo: issue_credit_memo,
    PayInvoice: pay_invoice,
    RefundPayment: refund_payment,
    RunClock: run_clock,
    RetryHeldInvoices: retry_held_invoices,
    ChargeOneOff: charge_one_off,
}


def handle(state: BillingState, command: Command) -> Outcome:
    return _HANDLERS[type(command)](state, command)
