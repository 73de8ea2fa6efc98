"""Usage intake: records are idempotent by their own id and rated at period end.

Rules:
- A usage record names a subscription contract with a usage line for its product, and a day
  inside the term that is not yet rated (usage for a rated period is refused with
  `UsagePeriodClosedError`: it needs a memo, not a silent re-rating).
- Sent again with the same id and content it changes nothing and emits nothing; the same id
  with other content is a `DuplicateIdError`. So a record is counted once, however often
  it is sent.
- Rating happens in `arrears` at the period end, never at intake.
"""

from __future__ import annotations

from dataclasses import replace

from finsync.domain.events import UsageRecorded
from finsync.domain.invoice import UsageRecord
from finsync.systems.billing.errors import (
    DuplicateIdError,
    InvalidCommandError,
    UnknownLineError,
    UsagePeriodClosedError,
)
from finsync.systems.billing.event import contract_ref, emit
from finsync.systems.billing.outcome import Outcome
from finsync.systems.billing.state import BillingState


def record_usage(state: BillingState, record: UsageRecord) -> Outcome:
    for known in state.usage:
        if known.id == record.id:
            if known != record:
                raise DuplicateIdError(f"usage {record.id} was already received with other "
                                       "content")
            return Outcome(state)
    sub = state.subscription(record.contract_id)
    contract, catalog = sub.contract, state.config.catalog
    if not any(line.product_id == record.product_id and catalog.plan(line.price_id).is_usage
               for line in contract.lines):
        raise UnknownLineError(f"{contract.id} has no usage line for {record.product_id!r}")
    if record.occurred_on < sub.arrears_through:
        raise UsagePeriodClosedError(f"usage {record.id} on {record.occurred_on}: "
                                     f"{contract.id} is rated through {sub.arrears_through}")
    if record.occurred_on >= contract.end_date:
        raise InvalidCommandError(f"usage {record.id} on {record.occurred_on} is after "
                                  f"{contract.id} ends on {contract.end_date}")
    emitted = emit(UsageRecorded(record), sub.correlation_id, contract_ref(contract))
    return Outcome(replace(state, usage=(*state.usage, record)), (emitted,))
