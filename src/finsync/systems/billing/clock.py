"""The billing clock: everything due up to a date, over the pure state.

Rules:
- `run(state, until)` performs, in date order, every step due on or before `until`:
  an arrears period that has ended (usage and arrears lines rated and invoiced on its end
  date), a renewal whose term has ended (auto-renewing, not cancelling, fully billed), and
  an advance span that has started (invoiced on its first day).
- On one day, arrears come before renewal and renewal before advance billing, so the last
  usage of a term is rated on the old version and the new term is billed on the new one;
  subscriptions are taken in contract-id order, so a run is deterministic and replayable.
- A step whose invoice is held (its tax failed) holds it and moves on like any other; the
  held drafts are retried before the steps (`handler`), oldest first.
- Running again to the same date does nothing; running to a later date picks up where the
  last run stopped. A run is bounded (`STEPS_MAX` steps per subscription): an endless run
  is a defect, not a case.
- A step reads and changes one subscription only (with its customer, its usage and the
  document numbers) and appends documents; so each step runs on a state holding just that
  subscription, and the next step is taken from a heap: a run costs O(steps log steps),
  not O(steps x subscriptions).
- `next_step_on(sub)` is the first day the clock has anything to do for `sub` (None:
  nothing, ever); steps only ever move later, so it is what the store indexes to find the
  subscriptions a run must read.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from datetime import date

from finsync.domain.invoice import RatedUsage, UsageRecord
from finsync.systems.billing.advance import bill_next_span
from finsync.systems.billing.arrears import bill_arrears
from finsync.systems.billing.cycle import next_span
from finsync.systems.billing.draft import HeldDraft
from finsync.systems.billing.errors import ClockLimitError
from finsync.systems.billing.event import Emitted
from finsync.systems.billing.outcome import Outcome
from finsync.systems.billing.state import (
    BillingState,
    InvoiceRecord,
    Subscription,
    SubscriptionStatus,
)
from finsync.systems.billing.subscription import RenewSubscription, renew_subscription

STEPS_MAX = 100_000

Step = tuple[date, int, str, Callable[[BillingState], Outcome]]


def run(state: BillingState, until: date) -> Outcome:
    subs = {sub.id: sub for sub in state.subscriptions}
    usage: defaultdict[str, list[UsageRecord]] = defaultdict(list)
    for record in state.usage:
        usage[record.contract_id].append(record)
    heap = [step[:3] for sub in state.subscriptions for step in _steps(sub) if step[0] <= until]
    heapq.heapify(heap)
    customers = {customer.id: customer for customer in state.customers}
    numbering, emitted = state.numbering, list[Emitted]()
    invoices, charges = list[InvoiceRecord](), list[RatedUsage]()
    held = list[HeldDraft]()
    for _ in range(STEPS_MAX * max(1, len(subs))):
        act = _next(heap, subs)
        if act is None:
            return Outcome(replace(
                state, subscriptions=tuple(subs[s.id] for s in state.subscriptions),
                invoices=state.invoices + tuple(invoices), numbering=numbering,
                usage_charges=state.usage_charges + tuple(charges),
                held=state.held + tuple(held)), tuple(emitted))
        sub = subs[act[2]]
        customer = customers.get(sub.contract.customer_id)
        own = replace(state, subscriptions=(sub,), usage=tuple(usage[sub.id]), invoices=(),
                      usage_charges=(), numbering=numbering, held=(),
                      customers=() if customer is None else (customer,))
        done = act[3](own)
        subs[sub.id] = done.state.subscription(sub.id)
        invoices += done.state.invoices
        charges += done.state.usage_charges
        held += done.state.held
        numbering, emitted = done.state.numbering, emitted + list(done.emitted)
        for step in _steps(subs[sub.id]):
            if step[0] <= until:
                heapq.heappush(heap, step[:3])
    raise ClockLimitError(f"the billing clock did not settle within {STEPS_MAX} steps "
                          "per subscription")


def _next(heap: list[tuple[date, int, str]], subs: dict[str, Subscription]) -> Step | None:
    """The earliest step still current (an entry left from before its subscription moved
    on is dropped)."""
    while heap:
        key = heapq.heappop(heap)
        for step in _steps(subs[key[2]]):
            if step[:3] == key:
                return step
    return None


def next_step_on(sub: Subscription) -> date | None:
    return min((step[0] for step in _steps(sub)), default=None)


def _steps(sub: Subscription) -> list[Step]:
    contract, steps = sub.contract, []
    if sub.arrears_through < contract.end_date:
        span, _ = next_span(sub.anchor, sub.arrears_months, sub.arrears_through,
                            contract.end_date)
        steps.append((span.end, 0, sub.id, lambda s: bill_arrears(s, s.subscription(sub.id))))
    fully_billed = min(sub.arrears_through, sub.billed_through) >= contract.end_date
    if sub.status is SubscriptionStatus.ACTIVE and sub.auto_renew and fully_billed:
        steps.append((contract.end_date, 1, sub.id,
                      lambda s: renew_subscription(s, RenewSubscription(sub.id))))
    if sub.billed_through < contract.end_date:
        steps.append((sub.billed_through, 2, sub.id,
                      lambda s: bill_next_span(s, s.subscription(sub.id))))
    return steps
