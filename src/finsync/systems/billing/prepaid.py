"""Prepaid drawdown: a balance bought up front and consumed by rated usage.

Rules:
- Buying a prepaid balance is invoiced at once (one line, taxed like its product) and raises
  the subscription's balance by the amount before tax.
- At each rating, usage charges draw on the balance in line order before anything is
  invoiced; only what the balance does not cover is invoiced as overage. Drawn usage is not
  taxed again: its tax was on the prepaid invoice.
- The balance never goes below zero, carries over renewals and does not expire in this core.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date

from finsync.domain.clock import Period
from finsync.domain.money import Money
from finsync.systems.billing.errors import (
    BillingCurrencyError,
    ContractStateError,
    InvalidCommandError,
)
from finsync.systems.billing.event import contract_ref
from finsync.systems.billing.invoicing import DraftLine, IssueContext, issue_invoice
from finsync.systems.billing.outcome import Outcome
from finsync.systems.billing.state import BillingState, SubscriptionStatus


@dataclass(frozen=True, slots=True)
class PurchasePrepaid:
    id: str
    contract_id: str
    product_id: str
    amount: Money
    on: date


def purchase_prepaid(state: BillingState, cmd: PurchasePrepaid) -> Outcome:
    sub = state.subscription(cmd.contract_id)
    contract = sub.contract
    if sub.status is SubscriptionStatus.CANCELLED or not cmd.on < contract.end_date:
        raise ContractStateError(f"{contract.id} takes no prepaid purchase on {cmd.on}")
    if cmd.amount.currency != contract.currency:
        raise BillingCurrencyError(f"prepaid {cmd.amount} on a {contract.currency} contract")
    if cmd.amount.amount <= 0 or cmd.amount.quantize() != cmd.amount:
        raise InvalidCommandError(f"prepaid amount {cmd.amount} must be positive, minor units")
    name = state.config.catalog.product(cmd.product_id).name
    draft = DraftLine("prepaid", cmd.product_id, f"{name}: prepaid balance", 1, cmd.amount,
                      Period(cmd.on, contract.end_date))
    ctx = IssueContext(contract, cmd.on, cmd.id, contract_ref(contract))
    issued = issue_invoice(state, (draft,), ctx)
    topped = replace(sub, prepaid_balance=sub.prepaid_balance + cmd.amount)
    return Outcome(issued.state.with_subscription(topped), issued.emitted)


def draw(balance: Money, charge: Money) -> tuple[Money, Money]:
    """(drawn from the balance, balance left) for a usage charge."""
    drawn = charge if charge <= balance else balance
    if drawn.amount < 0:
        drawn = Money.zero(charge.currency)
    return drawn, balance - drawn
