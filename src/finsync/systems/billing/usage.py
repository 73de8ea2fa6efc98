"""Usage intake: records are idempotent by their own id and rated at period end.

Rules:
- A usage record names a subscription contract with a usage line for its product, and a day
  inside the term that is not yet rated (usage for a rated period is refused with
  `UsagePeriodClosedError`: it needs a memo, not a silent re-rating).
- Sent again with the same id and content it changes nothing and emits nothing; the same id
  with other content is a `DuplicateIdError`. So a record is counted once, however often
  it is sent.
- Rating happens in `arrears` at the period end, never at intake.
- The periods usage is rated in (`rating_periods`, read for many subscriptions at once by
  `usage_periods`, for the hub to total usage per period): the arrears cycles laid on the
  anchor, cut at the first day not yet rated and at the term end, exactly as `arrears`
  lays its spans; before the first day not yet rated, the cycles already rated (usage
  there is refused: one refusal per period); after the term end, none.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import date

from sqlalchemy import Connection, and_, select

from finsync.domain.clock import Period
from finsync.domain.events import UsageRecorded
from finsync.domain.invoice import UsageRecord
from finsync.systems.billing import tables as t
from finsync.systems.billing.cycle import cycle_containing
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


PERIODS_CHUNK = 500  # subscriptions per read of `usage_periods`


def usage_periods(conn: Connection,
                  spans: Mapping[str, Period]) -> dict[str, tuple[Period, ...]]:
    """Per subscription asked, the periods its usage is rated in that hold a day of its
    span; a subscription billing does not know is left out. Reads each subscription's row
    and its current contract's end date, never its state."""
    sub, version = t.subscriptions, t.contract_versions
    ids = list(spans)
    periods: dict[str, tuple[Period, ...]] = {}
    for start in range(0, len(ids), PERIODS_CHUNK):
        rows = conn.execute(
            select(sub.c.id, sub.c.anchor, sub.c.arrears_months, sub.c.arrears_through,
                   version.c.contract)
            .join(version, and_(version.c.contract_id == sub.c.id,
                                version.c.version == sub.c.version))
            .where(sub.c.id.in_(ids[start:start + PERIODS_CHUNK])))
        for row in rows:
            # the contract as plain JSON: only its end date is read, not the whole contract
            term_end = date.fromisoformat(json.loads(row.contract)["end_date"])
            periods[row.id] = rating_periods(row.anchor, row.arrears_months,
                                             row.arrears_through, term_end, spans[row.id])
    return periods


def rating_periods(anchor: date, months: int, rated_through: date, term_end: date,
                   span: Period) -> tuple[Period, ...]:
    """The periods holding a day of `span`, in order: each arrears cycle (`cycle.
    cycle_containing`) cut at `rated_through` and at `term_end` (`arrears.bill_arrears`
    rates `[rated_through, min(cycle end, term end))` next)."""
    periods: list[Period] = []
    day = span.start
    last = min(span.end, term_end)
    while day < last:
        cycle = cycle_containing(anchor, months, day).period
        start = cycle.start
        stop = min(cycle.end, term_end)
        if start < rated_through < stop:
            if day < rated_through:
                stop = rated_through
            else:
                start = rated_through
        periods.append(Period(start, stop))
        day = stop
    return tuple(periods)
