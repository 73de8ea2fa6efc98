"""One-off charges: a catalogue price charged once on a subscription (a setup fee).

Rules:
- A one-off charge names a one-off price (`timing = "one_off"`) of the subscription's
  currency and a quantity of at least 1; it is invoiced at once, on its date, which falls
  inside the subscription's term (a cancelled subscription takes none).
- Its line costs what one period of the price costs at that quantity (flat: the unit price;
  per unit: quantity x unit price; tiered and volume through the tiers), rounded once; its
  service is the day it is charged.
- A tax-inclusive price is what the customer pays: the tax engine splits it into the
  line's net and its tax (net + tax = the price).
- The charge's id is its idempotency: the same charge again (an invoice or a held draft
  under that id for that price) bills nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from finsync.domain.clock import Period
from finsync.systems.billing.charge import rounded
from finsync.systems.billing.errors import (
    BillingCurrencyError,
    ContractStateError,
    InvalidCommandError,
    InvalidQuantityError,
)
from finsync.systems.billing.event import contract_ref
from finsync.systems.billing.invoicing import DraftLine, IssueContext, issue_invoice
from finsync.systems.billing.outcome import Outcome
from finsync.systems.billing.pricing import recurring_rate
from finsync.systems.billing.state import BillingState, SubscriptionStatus


@dataclass(frozen=True, slots=True)
class ChargeOneOff:
    id: str
    contract_id: str
    price_id: str
    quantity: int
    on: date


def charge_one_off(state: BillingState, cmd: ChargeOneOff) -> Outcome:
    if _charged(state, cmd):
        return Outcome(state)  # the same charge again (a command retried): billed once
    sub = state.subscription(cmd.contract_id)
    contract = sub.contract
    plan = state.config.catalog.plan(cmd.price_id)
    if not plan.one_off:
        raise InvalidCommandError(f"price {plan.id} is not a one-off price")
    if sub.status is SubscriptionStatus.CANCELLED or not (
            contract.start_date <= cmd.on < contract.end_date):
        raise ContractStateError(f"{contract.id} takes no one-off charge on {cmd.on}")
    if plan.price.unit_amount.currency != contract.currency:
        raise BillingCurrencyError(f"price {plan.id} in {plan.price.unit_amount.currency} on "
                                   f"a {contract.currency} contract")
    if cmd.quantity < 1:
        raise InvalidQuantityError(f"one-off quantity {cmd.quantity} must be at least 1")
    amount = rounded(recurring_rate(plan, cmd.quantity, plan.price.unit_amount),
                     contract.currency)
    name = state.config.catalog.product(plan.price.product_id).name
    draft = DraftLine(plan.id, plan.price.product_id, f"{name} x{cmd.quantity}", cmd.quantity,
                      amount, Period(cmd.on, cmd.on + timedelta(days=1)),
                      tax_inclusive=plan.tax_inclusive)
    ctx = IssueContext(contract, cmd.on, cmd.id, contract_ref(contract))
    return issue_invoice(state, (draft,), ctx)


def _charged(state: BillingState, cmd: ChargeOneOff) -> bool:
    """Whether the charge `cmd.id` was already billed: its invoice (the charge's id is the
    invoice's correlation id) or its draft held for tax."""
    issued = any(r.correlation_id == cmd.id and r.sources == (cmd.price_id,)
                 for r in state.invoices)
    return issued or any(d.correlation_id == cmd.id for d in state.held)
