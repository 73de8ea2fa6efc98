"""Business milestones per correlation id (DESIGN §7): what finance sees happen to a
commercial change, stored by value in the milestone log."""

from __future__ import annotations

from enum import StrEnum


class Milestone(StrEnum):
    CONTRACT_ACCEPTED = "contract_accepted"
    INVOICE_POSTED = "invoice_posted"
    CREDIT_MEMO_POSTED = "credit_memo_posted"
    PAYMENT_APPLIED = "payment_applied"
    PAYMENT_DECLINED = "payment_declined"  # recorded by the hub on acceptance (dunning)
    INVOICE_HELD = "invoice_held"  # recorded by the hub on acceptance (`hub.held_invoice`)
    REFUND_POSTED = "refund_posted"
    DISPUTE_FUNDS_POSTED = "dispute_funds_posted"
    DISPUTE_CLOSURE_POSTED = "dispute_closure_posted"
    REVENUE_JOURNAL_POSTED = "revenue_journal_posted"
    REVENUE_SCHEDULE_CREATED = "revenue_schedule_created"
    INVOICE_LINKED_TO_REVENUE = "invoice_linked_to_revenue"
    REVENUE_ADJUSTED = "revenue_adjusted"
    USAGE_RECOGNISED = "usage_recognised"
    EXCEPTION_RESOLVED = "exception_resolved"
    TAX_COMMITTED = "tax_committed"  # the tax engine committed a final document
    # The subscription platform applied a CPQ version's order (`hub.target.billing_target`).
    ORDER_ACCEPTED = "order_accepted"


# What each milestone says about the books (a correlation's financial status).
BOOKED = frozenset({Milestone.INVOICE_POSTED, Milestone.PAYMENT_APPLIED,
                    Milestone.CREDIT_MEMO_POSTED, Milestone.REFUND_POSTED,
                    Milestone.DISPUTE_FUNDS_POSTED, Milestone.DISPUTE_CLOSURE_POSTED,
                    Milestone.REVENUE_JOURNAL_POSTED})
SCHEDULED = frozenset({Milestone.REVENUE_SCHEDULE_CREATED, Milestone.INVOICE_LINKED_TO_REVENUE,
                       Milestone.REVENUE_ADJUSTED})
