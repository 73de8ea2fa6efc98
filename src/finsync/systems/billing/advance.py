"""Billing in advance: each cycle's recurring charges, invoiced on the cycle's first day.

Rules:
- The next span runs from where advance billing stopped to the next cycle boundary (or the
  term end); it is invoiced on its first day with one line per contract line, ramp piece
  and contract version in force (an amendment dated after what was billed splits the span).
- A piece that covers the whole cycle is a plain line; a shorter one (a stub, a line that
  starts or ends inside the cycle, a ramp step) is prorated and flagged so.
- Lines priced in arrears and usage lines are not billed here (see `arrears`).
- The subscription remembers the cycle it billed: mid-cycle amendments prorate against it.
"""

from __future__ import annotations

from dataclasses import replace

from finsync.domain.clock import Period
from finsync.domain.contract import ContractLine
from finsync.systems.billing.charge import Piece, pieces, rounded
from finsync.systems.billing.cycle import Cycle, next_span
from finsync.systems.billing.event import contract_ref
from finsync.systems.billing.invoicing import DraftLine, IssueContext, issue_invoice
from finsync.systems.billing.outcome import Outcome
from finsync.systems.billing.state import BillingState, Subscription, versions_over


def bill_next_span(state: BillingState, sub: Subscription) -> Outcome:
    """Invoice the next span of `sub` in advance and move its advance billing on."""
    contract = sub.contract
    span, cycle = next_span(sub.anchor, contract.billing_frequency.months, sub.billed_through,
                            contract.end_date)
    drafts = advance_drafts(state, sub, span, cycle)
    ctx = IssueContext(contract, span.start, sub.correlation_id, contract_ref(contract))
    issued = issue_invoice(state, drafts, ctx)
    moved = replace(sub, billed_through=span.end, cycle=cycle)
    return Outcome(issued.state.with_subscription(moved), issued.emitted)


def is_advance(state: BillingState, line: ContractLine) -> bool:
    plan = state.config.catalog.plan(line.price_id)
    return not plan.in_arrears and not plan.is_usage


def advance_drafts(state: BillingState, sub: Subscription, span: Period,
                   cycle: Cycle) -> tuple[DraftLine, ...]:
    """One line per contract line, ramp piece and version in force over the span."""
    catalog = state.config.catalog
    drafts: list[DraftLine] = []
    for part, contract in versions_over(sub, span):
        rule = state.config.proration.of(contract, sub.anchor)
        for line in contract.lines:
            if is_advance(state, line):
                for piece in pieces(line, catalog.plan(line.price_id), part, cycle, rule):
                    drafts.append(piece_draft(state, line, piece, contract.currency))
    return tuple(drafts)


def piece_draft(state: BillingState, line: ContractLine, piece: Piece,
                currency: str) -> DraftLine:
    name = state.config.catalog.product(line.product_id).name
    description = (f"{name} x{piece.quantity} @ {piece.unit_price} "
                   f"[{piece.span.start.isoformat()}, {piece.span.end.isoformat()})")
    return DraftLine(line.line_id, line.product_id, description, piece.quantity,
                     rounded(piece.amount, currency), piece.span, not piece.share.whole)
