"""Unpriced change orders and claims (606-10-25-11), applied as modifications once approved.

Rules:
- A change in scope the parties have approved, or a claim the entity can enforce, is a
  contract modification (606-10-25-10/11) even while its price is not agreed. The change in
  price is then estimated as variable consideration and constrained (606-10-32-5 to 32-13):
  the event carries that estimate (zero when wholly constrained). A change order not yet
  approved is not an event: nothing is accounted for until it is.
- It applies to one performance obligation measured by progress whose remaining goods are
  not distinct from those transferred (a single project partially satisfied): a cumulative
  catch-up (606-10-25-13(b); ASC 606 Example 9, 606-10-55-134/135). The obligation's price
  rises by the estimate from the approval date, the difference in cumulative revenue is
  recognised then, and the decision is kept like any modification's (treatment, reason,
  catch-up). The new measure (expected costs that include the change) comes with the
  obligation's next progress report.
- The estimate is not billable yet: the stated price (what the customer owes at contract
  prices) is unchanged, so the revenue it adds waits in the contract asset (606-10-45-3).
- When the price is agreed, or re-estimated, the difference is a change in transaction price
  of that obligation (a price change of kind variable consideration naming it,
  606-10-32-43/44), caught up on the same basis.
- A change order that adds distinct goods is a modification stated with its estimated
  prices (`amendment`); refused here, as is any obligation not measured by progress.
"""

from __future__ import annotations

from dataclasses import replace

from finsync.systems.revrec.errors import ContractMismatchError, ModificationError
from finsync.systems.revrec.event import ChangeOrderApproved
from finsync.systems.revrec.modification import (
    CHANGE_ORDER_PREFIX,
    LineChange,
    LineChangeKind,
    ModificationDecision,
    ModificationTreatment,
)
from finsync.systems.revrec.pattern import RecognitionPattern
from finsync.systems.revrec.progress import recognised
from finsync.systems.revrec.state import RevenueContractState
from finsync.systems.revrec.timegrid import at_midnight, just_after

CAUSE = "606-10-25-13(b)"


def apply_change_order(state: RevenueContractState,
                       event: ChangeOrderApproved) -> RevenueContractState:
    ob = state.obligation(event.obligation_id)
    if event.estimate.currency != state.currency:
        raise ContractMismatchError(f"{event.estimate} is not in the contract's "
                                    f"{state.currency}")
    if ob.pattern is not RecognitionPattern.PROGRESS:
        raise ModificationError(
            f"{ob.obligation_id} is recognised {ob.pattern.value}: an unpriced change order "
            f"is a cumulative catch-up of one obligation measured by progress ({CAUSE}); "
            "state distinct goods as a modification with their estimated prices")
    at = at_midnight(event.approved_on)
    segment = replace(ob.current, total=ob.current.total + event.estimate, effective=at)
    changed = ob.with_segment(segment)
    if changed.allocated_price.amount < 0:
        raise ModificationError(f"{ob.obligation_id}: allocated price would be "
                                f"{changed.allocated_price}")
    what = event.description or "change order"
    changed = changed.revised(event.event_id, CAUSE, at, f"{what}: unpriced, estimated "
                              f"{event.estimate} (606-10-25-11, constrained 606-10-32-11)")
    before = recognised(ob, state.granularity, at)
    after = recognised(changed, state.granularity, just_after(at))
    reason = (f"{what} approved, price not agreed: estimated as variable consideration, "
              f"constrained (606-10-25-11, 32-11); remaining goods not distinct "
              f"({ob.obligation_id})")
    decision = ModificationDecision(
        event.event_id, f"{CHANGE_ORDER_PREFIX}{event.event_id}", state.contract.version,
        event.approved_on,
        ModificationTreatment.CUMULATIVE_CATCH_UP, reason,
        (LineChange(ob.line_id, LineChangeKind.CHANGED, event.estimate),),
        ((ob.obligation_id, after - before),))
    new = replace(state.with_obligations((changed,)), decisions=(*state.decisions, decision))
    return new.applied(event.event_id)
