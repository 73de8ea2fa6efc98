"""A change in transaction price after a 25-13(a) modification that is attributable to
variable consideration promised before it (606-10-32-45(a), IFRS 15.90(a)).

Rules (ASC 606 Example 6, 606-10-55-135 to 55-140, is the worked case):
- The caller names the modification (`TransactionPriceChanged.promised_before`: its
  amendment id); a change without it is a change after the modification (32-45(b)) and is
  spread over the modified contract's obligations by `price_change`.
- The change is allocated to the obligations identified before the modification on their
  inception SSPs (`RevenueContractState.inception_allocation`; wholly to the named ones when
  `obligation_ids` is set, 32-44).
- Of each obligation's share, the part for what it had transferred by the modification date
  (share x its measure of progress then, rounded once) is recognised on the change's date
  (Example 6: "revenue of $20 for Product X in the period in which the change ... occurs").
  The rest is what the modification's pool would have held had the estimate been known
  then, so it goes to the obligations of that pool by the SSPs it was allocated with on the
  modification date, each caught up on what it has transferred since (prospective segment:
  base and total move by the part recognised at once, total also by its pool share).
  An obligation the modification caught up (25-13(b), in a 25-13(c) mix) or that was
  complete then keeps its whole share, caught up on its own measure.
- Any other change after a 25-13 modification (32-45(b)) goes to the obligations of the
  modified contract: those not yet satisfied immediately after the latest such modification
  (`modified_contract`), by the SSPs they were last allocated with; an obligation that was
  complete then takes none, nor does a good the modification removed (no share of its pool,
  SSP zero). When none is left unsatisfied, those the modification allocated to take it
  (satisfied already: a catch-up on the change's date, 606-10-32-43), else all of them
  (settled).
- Refused (a typed error naming `promised_before`): a modification the state does not
  hold, one not accounted for under 25-13(a)/(c) (32-45(a) does not apply), a change
  dated before it, a distinct period (`service_period`), and a contract with another
  25-13 modification (whose pool the amount would also have flowed through: left out).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal

from finsync.domain.money import Money
from finsync.systems.revrec.errors import AllocationError
from finsync.systems.revrec.event import TransactionPriceChanged
from finsync.systems.revrec.modification import ModificationDecision, ModificationTreatment
from finsync.systems.revrec.obligation import ObligationState
from finsync.systems.revrec.progress import progress, segment_in_force
from finsync.systems.revrec.state import RevenueContractState
from finsync.systems.revrec.timegrid import at_midnight

PARAGRAPH = "606-10-32-45(a)"
_REALLOCATING = frozenset({ModificationTreatment.TERMINATION_AND_NEW_CONTRACT,
                           ModificationTreatment.MIXED, ModificationTreatment.CUMULATIVE_CATCH_UP})
_POOL_CAUSES = frozenset({"606-10-25-13(a)", "606-10-25-13(c)"})


def apply_promised_before(state: RevenueContractState,
                          event: TransactionPriceChanged) -> RevenueContractState:
    decision = _modification(state, event)
    before = _inception_shares(state, event)
    pool = [ob for ob in state.obligations if _in_pool(ob, decision)]
    at_mod = at_midnight(decision.effective_date)
    now: dict[str, Money] = {}
    later = Money.zero(state.currency)
    for ob, share in before:
        pooled = ob in pool
        done = progress(ob, segment_in_force(ob, at_mod).basis, state.granularity,
                        at_mod) if pooled else Decimal(1)
        satisfied = Money(share.amount * done, share.currency).quantize()
        now[ob.obligation_id] = satisfied
        later = later + (share - satisfied)
    spread = _to_pool(pool, later, event)
    changed = [_moved(ob, now.get(ob.obligation_id), spread.get(ob.obligation_id), event,
                      decision)
               for ob in state.obligations
               if ob.obligation_id in now or ob.obligation_id in spread]
    return state.with_obligations(tuple(changed)).applied(event.event_id)


def modified_contract(state: RevenueContractState,
                      chosen: Sequence[ObligationState]) -> list[ObligationState]:
    """Of `chosen`, the obligations of the modified contract (606-10-32-45(b))."""
    latest = [d for d in state.decisions if d.treatment in _REALLOCATING]
    if not latest:
        return list(chosen)
    at = at_midnight(latest[-1].effective_date)
    # A good the modification removed got no share of its pool (SSP zero): though its
    # measure runs on, it is no obligation of the modified contract.
    kept = [ob for ob in chosen if not ob.standalone_selling_price.is_zero]
    open_then = [ob for ob in kept
                 if progress(ob, segment_in_force(ob, at).basis, state.granularity, at) < 1]
    if open_then:
        return open_then
    allocated = [ob for ob in kept
                 if any(r.event_id == latest[-1].event_id for r in ob.revisions)]
    return allocated or list(chosen)


def _modification(state: RevenueContractState,
                  event: TransactionPriceChanged) -> ModificationDecision:
    named = event.promised_before
    found = [d for d in state.decisions if d.amendment_id == named]
    if not found:
        raise AllocationError(f"promised_before: {state.revenue_contract_id} has no "
                              f"modification {named!r} ({PARAGRAPH})")
    decision = found[-1]
    if decision.treatment not in (ModificationTreatment.TERMINATION_AND_NEW_CONTRACT,
                                  ModificationTreatment.MIXED):
        raise AllocationError(
            f"promised_before: {named} was accounted for under {decision.paragraph}; "
            f"{PARAGRAPH} applies after a 606-10-25-13(a) modification only: send the change "
            "without promised_before (606-10-32-43 / 32-45(b))")
    if event.effective_date < decision.effective_date:
        raise AllocationError(f"promised_before: the change of {event.effective_date} is "
                              f"dated before {named} ({decision.effective_date})")
    if event.service_period is not None:
        raise AllocationError(f"promised_before: a change for one distinct period "
                              f"(service_period) is not allocated under {PARAGRAPH}")
    others = [d for d in state.decisions if d.treatment in _REALLOCATING and d is not decision]
    if others:
        raise AllocationError(
            f"promised_before: {state.revenue_contract_id} has another 25-13 modification "
            f"({others[0].amendment_id}); {PARAGRAPH} through more than one is left out")
    return decision


def _inception_shares(state: RevenueContractState, event: TransactionPriceChanged
                      ) -> list[tuple[ObligationState, Money]]:
    """The change split over the obligations identified at inception, by their inception
    SSPs (largest remainder), or over the named ones (32-44)."""
    inception = [s for s in state.inception_allocation
                 if not event.obligation_ids or s.obligation_id in event.obligation_ids]
    unknown = set(event.obligation_ids) - {s.obligation_id for s in inception}
    if unknown or not inception:
        raise AllocationError(f"promised_before: {sorted(unknown) or 'no obligation'} not "
                              "identified before the modification")
    weights = [s.standalone_selling_price.amount for s in inception]
    if len(inception) == 1:
        weights = [Decimal(1)]
    if sum(weights) <= 0:
        raise AllocationError("promised_before: no inception SSP to allocate the change by")
    shares = event.amount.allocate(weights)
    return [(state.obligation(s.obligation_id), share)
            for s, share in zip(inception, shares, strict=True)]


def _in_pool(ob: ObligationState, decision: ModificationDecision) -> bool:
    return not ob.pattern.variable and any(
        r.event_id == decision.event_id and r.cause in _POOL_CAUSES for r in ob.revisions)


def _to_pool(pool: Sequence[ObligationState], amount: Money,
             event: TransactionPriceChanged) -> dict[str, Money]:
    if amount.is_zero:
        return {}
    weights = [ob.standalone_selling_price.amount for ob in pool]
    if not pool or sum(weights) <= 0:
        raise AllocationError(f"promised_before: {amount} falls to goods not transferred by "
                              f"{event.promised_before}, whose pool has no SSP to take it")
    return {ob.obligation_id: share
            for ob, share in zip(pool, amount.allocate(weights), strict=True)}


def _moved(ob: ObligationState, now: Money | None, pooled: Money | None,
           event: TransactionPriceChanged, decision: ModificationDecision) -> ObligationState:
    zero = Money.zero(ob.currency)
    now, pooled = now or zero, pooled or zero
    at = at_midnight(event.effective_date)
    current = ob.current
    base = None if current.base is None else current.base + now
    segment = replace(current, total=current.total + now + pooled, base=base, effective=at)
    ob = ob.with_segment(segment)
    if (now + pooled).amount < 0 and ob.allocated_price.amount < 0:
        raise AllocationError(f"{ob.obligation_id}: allocated price would be "
                              f"{ob.allocated_price}")
    return ob.revised(event.event_id, PARAGRAPH, at,
                      f"{event.kind.value} promised before {decision.amendment_id}: {now} "
                      f"for what was transferred by then, {pooled} through its pool")
