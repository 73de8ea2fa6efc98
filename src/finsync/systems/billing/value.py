"""What a contract is worth to billing, for reconciliation with the revenue engine.

Rules:
- Value = the net consideration billed under the contract so far (invoice lines before
  tax, credit memos on its invoices deducted; a draft held for tax counts as billed: it is
  owed, only its tax is not known yet) + the fixed fees its current term will still
  bill. Usage is counted as it is billed: future usage is unknown. A cancelled contract
  bills nothing more.
- The fixed fees still to come are computed from the contract's own terms: every span
  billing will still invoice up to the term end (advance spans from where advance billing
  stopped, arrears periods from where arrears billing stopped, laid on the subscription's
  anchor), priced with the contract versions in force over each span, ramps and proration
  as billing prices them (`charge.pieces`) and rounded where billing rounds: once per
  advance piece, once per line and arrears period. The term is not renewed.
- Nothing here reads other contracts or runs the company's billing clock: the cost is the
  contract's own spans, whatever the size of the company.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from decimal import Decimal

from finsync.domain.catalog import PriceModel
from finsync.domain.clock import Period
from finsync.domain.money import Money
from finsync.systems.billing.charge import pieces, rounded
from finsync.systems.billing.cycle import Cycle, next_span
from finsync.systems.billing.state import (
    BillingConfig,
    BillingState,
    Subscription,
    SubscriptionStatus,
    versions_over,
)

SPANS_MAX = 10_000  # a term of monthly spans is at most a few hundred; more is a defect


def contract_value(config: BillingConfig, sub: Subscription, billed_net: Money) -> Money:
    """`billed_net` (what the contract's invoices billed before tax, less credit memos on
    them) plus what its current term will still bill in fixed fees."""
    if sub.status is SubscriptionStatus.CANCELLED:
        return billed_net
    return billed_net + still_to_bill(config, sub)


def bills_nothing_more(config: BillingConfig, sub_status: SubscriptionStatus,
                       billed_through: date, arrears_through: date, end_date: date,
                       price_ids: Iterable[str]) -> bool:
    """True when the contract provably bills no more fixed fees: cancelled, or billed in
    advance to its end (or without advance lines) and in arrears to its end (or without
    recurring arrears lines), `price_ids` being every line's price in any version. A fast
    path for reads over many contracts; `still_to_bill` answers the rest exactly."""
    if sub_status is SubscriptionStatus.CANCELLED:
        return True
    plans = [config.catalog.plan(price_id) for price_id in set(price_ids)]
    advance = any(not p.in_arrears and not p.is_usage for p in plans)
    arrears = any(p.in_arrears and not p.is_usage for p in plans)
    return ((billed_through >= end_date or not advance)
            and (arrears_through >= end_date or not arrears))


def contract_value_in(state: BillingState, contract_id: str) -> Money:
    """`contract_value` of a contract of an in-memory state (tests, what-ifs)."""
    sub = state.subscription(contract_id)
    currency = sub.contract.currency
    invoices = [r.invoice for r in state.invoices if r.invoice.contract_id == contract_id]
    ids = {invoice.id for invoice in invoices}
    billed = sum((invoice.subtotal for invoice in invoices), Money.zero(currency))
    credited = sum((memo.subtotal for memo in state.credit_memos if memo.invoice_id in ids),
                   Money.zero(currency))
    held = sum((d.held.subtotal for d in state.held
                if d.held.contract_id == contract_id and not d.released), Money.zero(currency))
    return contract_value(state.config, sub, billed - credited + held)


def still_to_bill(config: BillingConfig, sub: Subscription) -> Money:
    """The fixed fees billing will still invoice to the term end (advance and arrears)."""
    currency = sub.contract.currency
    end = sub.contract.end_date
    usage = _usage_products(config)
    amount = Money.zero(currency)
    day = sub.billed_through
    for _ in range(SPANS_MAX):
        if day >= end:
            break
        span, cycle = next_span(sub.anchor, sub.contract.billing_frequency.months, day, end)
        amount = amount + _advance(config, sub, span, cycle, usage)
        day = span.end
    day = sub.arrears_through
    for _ in range(SPANS_MAX):
        if day >= end:
            break
        span, cycle = next_span(sub.anchor, sub.arrears_months, day, end)
        amount = amount + _arrears(config, sub, span, cycle, usage)
        day = span.end
    return amount


def _usage_products(config: BillingConfig) -> frozenset[str]:
    """Products with a usage price: their lines are never fixed fees."""
    return frozenset(plan.price.product_id for plan in config.catalog.plans
                     if plan.price.model is PriceModel.USAGE)


def _advance(config: BillingConfig, sub: Subscription, span: Period, cycle: Cycle,
             usage: frozenset[str]) -> Money:
    """Billing's advance invoice for the span: one rounded line per piece."""
    catalog, currency = config.catalog, sub.contract.currency
    amount = Money.zero(currency)
    for part, contract in versions_over(sub, span):
        rule = config.proration.of(contract, sub.anchor)
        for line in contract.lines:
            plan = catalog.plan(line.price_id)
            if plan.in_arrears or plan.is_usage or line.product_id in usage:
                continue
            for piece in pieces(line, plan, part, cycle, rule):
                amount = amount + rounded(piece.amount, currency)
    return amount


def _arrears(config: BillingConfig, sub: Subscription, span: Period, cycle: Cycle,
             usage: frozenset[str]) -> Money:
    """Billing's recurring arrears charges for the period: summed exactly over the
    versions in force, rounded once per contract line."""
    catalog, currency = config.catalog, sub.contract.currency
    exact: dict[str, Decimal] = {}
    for part, contract in versions_over(sub, span):
        rule = config.proration.of(contract, sub.anchor)
        for line in contract.lines:
            plan = catalog.plan(line.price_id)
            if not plan.in_arrears or plan.is_usage or line.product_id in usage:
                continue
            priced = pieces(line, plan, part, cycle, rule)
            if priced:
                exact[line.line_id] = exact.get(line.line_id, Decimal(0)) + sum(
                    (p.amount for p in priced), Decimal(0))
    return sum((rounded(value, currency) for value in exact.values()), Money.zero(currency))
