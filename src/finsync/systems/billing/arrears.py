"""Billing in arrears: recurring charges priced in arrears and usage, at each period end.

Rules:
- Arrears periods are laid on the subscription's anchor like cycles (by default the billing
  frequency; monthly is common for overage) and clipped to the term end or cancellation.
- At a period's end: recurring arrears lines are charged version by version (each contract
  version prices the days it was in force), summed exactly and rounded once per line.
- Usage is rated once per usage line and period: the quantity is the sum of the period's
  usage records (each counted once, whatever the number of times it was sent), priced with
  the version in force at the period end; the included quantity is free each period.
- Usage first draws on the prepaid balance; what is left is invoiced as overage. Each rating
  is a `RatedUsage` (event `UsageRated`), also when nothing is left to invoice. It names
  the invoice that billed it; none when that invoice is held (its tax failed).
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from finsync.domain.clock import Period
from finsync.domain.contract import ContractLine
from finsync.domain.events import InvoiceIssued, UsageRated
from finsync.domain.ids import derive_id
from finsync.domain.invoice import RatedUsage
from finsync.domain.money import Money
from finsync.systems.billing.charge import pieces, rounded
from finsync.systems.billing.cycle import Cycle, next_span
from finsync.systems.billing.event import contract_ref, emit
from finsync.systems.billing.invoicing import DraftLine, IssueContext, issue_invoice
from finsync.systems.billing.outcome import Outcome
from finsync.systems.billing.prepaid import draw
from finsync.systems.billing.pricing import usage_rate
from finsync.systems.billing.state import BillingState, Subscription, versions_over


def bill_arrears(state: BillingState, sub: Subscription) -> Outcome:
    """Rate and invoice the next arrears period of `sub`, and move arrears billing on."""
    span, cycle = next_span(sub.anchor, sub.arrears_months, sub.arrears_through,
                            sub.contract.end_date)
    drafts = _recurring_drafts(state, sub, span, cycle)
    charges, balance = _usage_charges(state, sub, span)
    drafts += tuple(_usage_draft(state, c) for c in charges if not c.invoiced.is_zero)
    ctx = IssueContext(sub.contract, span.end, sub.correlation_id, contract_ref(sub.contract))
    issued = issue_invoice(state, drafts, ctx)
    # The invoice that bills the charges; none when nothing was invoiced or it is held.
    invoice_id = next((e.event.invoice.id for e in issued.emitted
                       if isinstance(e.event, InvoiceIssued)), None)
    charges = tuple(replace(c, invoice_id=invoice_id if not c.invoiced.is_zero else None)
                    for c in charges)
    rated = tuple(emit(UsageRated(c), sub.correlation_id, contract_ref(sub.contract))
                  for c in charges)
    moved = replace(sub, arrears_through=span.end, prepaid_balance=balance)
    after = replace(issued.state, usage_charges=issued.state.usage_charges + charges)
    return Outcome(after.with_subscription(moved), rated + issued.emitted)


def _recurring_drafts(state: BillingState, sub: Subscription, span: Period,
                      cycle: Cycle) -> tuple[DraftLine, ...]:
    catalog = state.config.catalog
    exact: dict[str, tuple[ContractLine, Decimal, bool]] = {}
    for part, contract in versions_over(sub, span):
        rule = state.config.proration.of(contract, sub.anchor)
        for line in contract.lines:
            plan = catalog.plan(line.price_id)
            if not plan.in_arrears or plan.is_usage:
                continue
            priced = pieces(line, plan, part, cycle, rule)
            if priced:
                _, before, _ = exact.get(line.line_id, (line, Decimal(0), True))
                whole = len(priced) == 1 and priced[0].share.whole
                exact[line.line_id] = (line, before + sum(p.amount for p in priced), whole)
    return tuple(_arrears_draft(state, line, amount, span, whole, sub.contract.currency)
                 for line, amount, whole in exact.values())


def _arrears_draft(state: BillingState, line: ContractLine, amount: Decimal, span: Period,
                   whole: bool, currency: str) -> DraftLine:
    name = state.config.catalog.product(line.product_id).name
    service = Period(max(span.start, line.start_date), min(span.end, line.end_date))
    return DraftLine(line.line_id, line.product_id, f"{name} x{line.quantity} in arrears",
                     line.quantity, rounded(amount, currency), service, not whole)


def _usage_lines(state: BillingState, sub: Subscription, span: Period) -> tuple[ContractLine, ...]:
    contract = list(versions_over(sub, span))[-1][1]
    return tuple(line for line in contract.lines
                 if state.config.catalog.plan(line.price_id).is_usage
                 and line.start_date < span.end and line.end_date > span.start)


def _usage_charges(state: BillingState, sub: Subscription,
                   span: Period) -> tuple[tuple[RatedUsage, ...], Money]:
    balance, charges = sub.prepaid_balance, []
    for line in _usage_lines(state, sub, span):
        plan = state.config.catalog.plan(line.price_id)
        used = sum(r.quantity for r in state.usage if r.contract_id == sub.id
                   and r.product_id == line.product_id and r.occurred_on in span)
        billable, exact = usage_rate(plan, used, line.unit_price)
        amount = rounded(exact, sub.contract.currency)
        drawn, balance = draw(balance, amount)
        charge_id = derive_id("uc", sub.id, line.line_id, span.start.isoformat())
        charges.append(RatedUsage(charge_id, sub.id, line.line_id, line.product_id, span.start,
                                  span.end, used, plan.price.included_quantity, billable,
                                  amount, drawn, amount - drawn))
    return tuple(charges), balance


def _usage_draft(state: BillingState, charge: RatedUsage) -> DraftLine:
    name = state.config.catalog.product(charge.product_id).name
    note = f", {charge.drawn} from prepaid balance" if not charge.drawn.is_zero else ""
    description = (f"{name}: {charge.used} used, {charge.included} included, "
                   f"{charge.billable} billable{note}")
    return DraftLine(charge.line_id, charge.product_id, description, charge.billable,
                     charge.invoiced, charge.period)
