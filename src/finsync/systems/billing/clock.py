"""The billing clock: everything due up to a date, over the pure state.

Rules:
- `run(state, until)` performs, in date order, every step due on or before `until`:
  an arrears period that has ended (usage and arrears lines rated and invoiced on its end
  date), a renewal whose term has ended (auto-renewing, not cancelling, fully billed), and
  an advance span that has started (invoiced on its first day).
- On one day, arrears come before renewal and renewal before advance billing, so the last
  usage of a term is rated on the old version and the new term is billed on the new one;
  subscriptions are taken in contract-id order, so a run is deterministic and replayable.
- Running again to the same date does nothing; running to a later date picks up where the
  last run stopped. A run is bounded (`STEPS_MAX`): an endless run is a defect, not a case.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from finsync.systems.billing.advance import bill_next_span
from finsync.systems.billing.arrears import bill_arrears
from finsync.systems.billing.cycle import next_span
from finsync.systems.billing.errors import ClockLimitError
from finsync.systems.billing.outcome import Outcome
from finsync.systems.billing.state import BillingState, Subscription, SubscriptionStatus
from finsync.systems.billing.subscription import RenewSubscription, renew_subscription

STEPS_MAX = 100_000

Step = tuple[date, int, str, Callable[[BillingState], Outcome]]


def run(state: BillingState, until: date) -> Outcome:
    outcome = Outcome(state)
    for _ in range(STEPS_MAX):
        due = [step for sub in outcome.state.subscriptions for step in _steps(sub)
               if step[0] <= until]
        if not due:
            return outcome
        _, _, _, act = min(due, key=lambda step: step[:3])
        outcome = outcome.then(act(outcome.state))
    raise ClockLimitError(f"the billing clock did not settle within {STEPS_MAX} steps")


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
