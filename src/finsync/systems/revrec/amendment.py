"""Applying a contract modification to a revenue contract (606-10-25-12 and 25-13).

Rules (the treatment comes from `modification.decide`):
- Separate contract (25-12): existing obligations are untouched. Each added line, and the
  added units of each increased line (obligation `<line>+v<version>`, `obligation_id`),
  becomes an obligation of a new allocation group; the added consideration is allocated
  among them by relative SSP measured on the modification date.
- Partial 25-12 (`modification.split_off`): the additions at SSP are a separate contract as
  above; the other changes alone are then treated as below, as if those additions were not
  in the amendment. One decision per part, the separate contract first.
- Prospective (25-13(a)), for the remaining distinct goods: the pool is the consideration not
  yet recognised (allocated - recognised at the modification date) plus the change in
  consideration; it is allocated by the SSPs, measured on the modification date, of what
  remains of each good (ratable: the rest of the term; priced once: (1 - progress) x SSP).
  Each obligation continues from what it has recognised (a prospective segment).
  Goods removed, and units moved out of a separate-contract obligation, get no share.
- Cumulative catch-up (25-13(b)), for goods not distinct from those transferred: the
  obligation absorbs its own line's change in consideration and new measure; the difference
  in cumulative revenue is recognised on the modification date. Its measure continues
  from the segment in force on that date: a version dated before the one it follows (placed
  after it, `order`) does not take the later version's anchor and base.
- Mixed (25-13(c)): catch-up for the obligations named not distinct, prospective for the rest.
- Ratable measures keep their history: units before the modification date stay as they were.
- What has been recognised by the modification date counts the changes of that date applied
  before it (a same-day price change, `order`): their catch-up is revenue of the day, not
  part of the pool, and the decision's catch-up is the modification's alone.
- Line changes are measured against what the revenue contract holds: a line with no
  performance obligation (added after its service had ended) carries no consideration, so
  once changed it is an added line, measured from nothing, and gets its own obligation.
- Every decision is kept with its reason, paragraph, line changes and catch-up per obligation.
- Material rights (`material_right`) take no part: their SSP is an estimate made at inception.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from finsync.domain.contract import SubscriptionContract
from finsync.domain.money import Money, total
from finsync.systems.revrec.allocation import AllocationInput, allocate
from finsync.systems.revrec.consideration import (
    PriceBook,
    Step,
    line_steps,
    merge_history,
    ssp_value,
    steps_from,
)
from finsync.systems.revrec.errors import ContractMismatchError
from finsync.systems.revrec.event import ContractModified
from finsync.systems.revrec.material_right import right_ids
from finsync.systems.revrec.modification import (
    LineChange,
    LineChangeKind,
    ModificationDecision,
    ModificationTreatment,
    decide,
    line_changes,
    split_off,
    split_reason,
)
from finsync.systems.revrec.obligation import ObligationBasis, ObligationState, Segment
from finsync.systems.revrec.obligation_id import split_id
from finsync.systems.revrec.progress import (
    progress,
    recognised,
    recognised_main,
    segment_in_force,
)
from finsync.systems.revrec.state import RevenueContractState
from finsync.systems.revrec.timegrid import at_midnight, just_after


def apply_modification(state: RevenueContractState,
                       event: ContractModified) -> RevenueContractState:
    amendment = event.amendment
    _check(state, event)
    at = at_midnight(amendment.effective_date)
    changes = line_changes(_held(state, amendment.contract), amendment.contract,
                           amendment.effective_date, state.terms.pattern_of)
    rights = right_ids(state.terms)  # material rights keep their inception estimate
    remaining = [ob.obligation_id for ob in state.obligations
                 if not ob.pattern.variable and ob.obligation_id not in rights
                 and progress(ob, ob.current.basis, state.granularity, at) < 1]
    separate, rest = split_off(changes, event.facts)
    split = _separate(state, event, separate) if separate else ()
    treatment, reason = decide(rest, event.facts, remaining)
    catch_up_ids = frozenset(event.facts.remaining_not_distinct & set(remaining))
    if treatment is ModificationTreatment.SEPARATE_CONTRACT:
        changed = _separate(state, event, rest)
    elif treatment is ModificationTreatment.NOT_A_MODIFICATION:
        changed = ()
    else:
        changed = _reallocate(state, event, rest, remaining, catch_up_ids, treatment)
    decisions = [_decision(event, treatment, reason, rest, _catch_up(state, changed, at))]
    if separate:  # row 2p: one decision per part, the separate contract first
        decisions = [_decision(event, ModificationTreatment.SEPARATE_CONTRACT,
                               split_reason([ob.obligation_id for ob in split]), separate,
                               ()),
                     _decision(event, treatment, f"the other changes: {reason}", rest,
                               decisions[0].catch_up)]
    new = replace(state.with_obligations((*split, *changed)), contract=amendment.contract,
                  decisions=(*state.decisions, *decisions))
    return new.applied(event.event_id)


def _decision(event: ContractModified, treatment: ModificationTreatment, reason: str,
              changes: Sequence[LineChange],
              catch_up: tuple[tuple[str, Money], ...]) -> ModificationDecision:
    amendment = event.amendment
    return ModificationDecision(event.event_id, amendment.id, amendment.version,
                                amendment.effective_date, treatment, reason, tuple(changes),
                                catch_up)


def _check(state: RevenueContractState, event: ContractModified) -> None:
    contract = event.amendment.contract
    if contract.id != state.contract.id or contract.currency != state.currency:
        raise ContractMismatchError(f"amendment {event.amendment.id} is for {contract.id} "
                                    f"in {contract.currency}, not {state.contract.id}")
    if contract.version != state.contract.version + 1:
        raise ContractMismatchError(f"amendment {event.amendment.id} makes version "
                                    f"{contract.version}; {state.contract.id} is at version "
                                    f"{state.contract.version}")


def _held(state: RevenueContractState,
          new: SubscriptionContract) -> SubscriptionContract:
    """The contract as the revenue contract holds it, to measure the change against.

    A line added after its service had ended got no performance obligation: it carries no
    consideration. Once the amendment changes or removes it, it is measured from nothing (an
    added line), so its change cannot move consideration the transaction price never held."""
    held = {ob.line_id for ob in state.obligations}
    lines = tuple(li for li in state.contract.lines if li.line_id in held or li in new.lines)
    return replace(state.contract, lines=lines)


def _new_lines(contract: SubscriptionContract) -> dict[str, tuple[Step, ...]]:
    return {line.line_id: line_steps(line) for line in contract.lines}


def _separate(state: RevenueContractState, event: ContractModified,
              changes: Sequence[LineChange]) -> tuple[ObligationState, ...]:
    amendment = event.amendment
    book = PriceBook.of(amendment.contract)
    product = {line.line_id: line.product_id for line in amendment.contract.lines}
    taken = {ob.obligation_id for ob in state.obligations} | set(product)
    drafts: list[ObligationState] = []
    for change in changes:
        if change.kind not in (LineChangeKind.ADDED, LineChangeKind.INCREASED) or (
                not change.added_steps):
            continue
        ob_id = change.line_id if change.kind is LineChangeKind.ADDED else split_id(
            change.line_id, amendment.version, taken)
        taken.add(ob_id)
        drafts.append(_draft(state, event, book, ob_id, change.line_id,
                             product[change.line_id], change.added_steps, change.delta))
    return _allocate_new(state, event, drafts, amendment.id, "606-10-25-12")


def _draft(state: RevenueContractState, event: ContractModified, book: PriceBook,
           obligation_id: str, line_id: str, product_id: str, steps: tuple[Step, ...],
           stated: Money) -> ObligationState:
    pattern = state.terms.pattern_of(product_id)
    residual = product_id in state.terms.residual_product_ids
    ssp = ssp_value(pattern, product_id, steps, book, event.standalone_selling_prices,
                    event.amendment.effective_date, required=not (residual or pattern.variable))
    at = at_midnight(event.amendment.effective_date)
    segment = Segment(Money.zero(book.currency), ObligationBasis(pattern, steps, book),
                      effective=at)
    return ObligationState(obligation_id, line_id, product_id, state.contract.id, ssp, stated,
                           (segment,))


def _allocate_new(state: RevenueContractState, event: ContractModified,
                  drafts: Sequence[ObligationState], group: str,
                  cause: str) -> tuple[ObligationState, ...]:
    pooled = [d for d in drafts if not d.pattern.variable]
    pool = total([d.stated_price for d in pooled], state.currency)
    inputs = [AllocationInput(d.obligation_id, d.standalone_selling_price,
                              d.product_id in state.terms.residual_product_ids) for d in pooled]
    shares = {s.obligation_id: s.amount for s in allocate(pool, inputs)}
    at = at_midnight(event.amendment.effective_date)
    return tuple(
        replace(d, group=group, segments=(replace(d.current, total=shares.get(
            d.obligation_id, d.current.total)),)).revised(event.event_id, cause, at,
                                                          f"{event.amendment.id}: added")
        for d in drafts)


def _reallocate(state: RevenueContractState, event: ContractModified,
                changes: Sequence[LineChange], remaining: Sequence[str],
                catch_up_ids: frozenset[str],
                treatment: ModificationTreatment) -> tuple[ObligationState, ...]:
    amendment = event.amendment
    at = at_midnight(amendment.effective_date)
    by_line = {c.line_id: c for c in changes}
    new_lines = _new_lines(amendment.contract)
    caught = tuple(_caught_up(state, ob, by_line.get(ob.obligation_id), new_lines, event)
                   for ob in state.obligations if ob.obligation_id in catch_up_ids)
    book = PriceBook.of(amendment.contract)
    product = {line.line_id: line.product_id for line in amendment.contract.lines}
    added = [_draft(state, event, book, c.line_id, c.line_id, product[c.line_id],
                    c.added_steps, c.delta)
             for c in changes if c.kind is LineChangeKind.ADDED and c.added_steps]
    prospective = [ob for ob in state.obligations
                   if ob.obligation_id in remaining and ob.obligation_id not in catch_up_ids]
    moved = _prospective(state, event, prospective, added, changes, catch_up_ids,
                         new_lines)
    cause = ("606-10-25-13(c)" if treatment is ModificationTreatment.MIXED
             else "606-10-25-13(a)")
    moved = tuple(ob.revised(event.event_id, cause, at, f"{amendment.id}: prospective")
                  for ob in moved)
    usage = tuple(d.revised(event.event_id, cause, at, f"{amendment.id}: added usage")
                  for d in added if d.pattern.variable)
    return (*caught, *moved, *usage)


def _caught_up(state: RevenueContractState, ob: ObligationState, change: LineChange | None,
               new_lines: dict[str, tuple[Step, ...]],
               event: ContractModified) -> ObligationState:
    at = at_midnight(event.amendment.effective_date)
    delta = change.delta if change else Money.zero(state.currency)
    basis = _rebased(ob, new_lines.get(ob.line_id), event)
    # The measure continues from the segment in force on the modification date: a version
    # dated before the one it follows (placed after it, `order`) supersedes that version's
    # segment from its own date, so it must not carry that segment's later anchor and base.
    in_force = segment_in_force(ob, at, through=True)
    segment = replace(in_force, total=ob.current.total + delta, basis=basis, effective=at)
    ob = replace(ob.with_segment(segment), stated_price=ob.stated_price + delta)
    return ob.revised(event.event_id, "606-10-25-13(b)", at,
                      f"{event.amendment.id}: cumulative catch-up of {delta}")


def _rebased(ob: ObligationState, steps: tuple[Step, ...] | None,
             event: ContractModified) -> ObligationBasis:
    """The obligation's measure after the modification (unchanged if its line is gone or it
    is a separate-contract obligation)."""
    if steps is None or ob.obligation_id != ob.line_id:
        return ob.current.basis
    if not ob.pattern.priced_per_period:
        return replace(ob.current.basis, steps=steps)
    merged = merge_history(ob.current.basis.steps, steps, event.amendment.effective_date)
    return replace(ob.current.basis, steps=merged) if merged else ob.current.basis


@dataclass(frozen=True, slots=True)
class _Plan:
    """What an existing obligation becomes under prospective treatment."""

    ob: ObligationState
    basis: ObligationBasis
    stated: Money
    base: Money
    gone: bool


def _prospective(state: RevenueContractState, event: ContractModified,
                 existing: Sequence[ObligationState], added: Sequence[ObligationState],
                 changes: Sequence[LineChange], catch_up_ids: frozenset[str],
                 new_lines: dict[str, tuple[Step, ...]]) -> tuple[ObligationState, ...]:
    at = at_midnight(event.amendment.effective_date)
    book = PriceBook.of(event.amendment.contract)
    by_line = {c.line_id: c for c in changes}
    plans = [_plan(state, ob, by_line.get(ob.line_id), new_lines, event) for ob in existing]
    fresh = [d for d in added if not d.pattern.variable]
    caught_lines = {ob.line_id for ob in state.obligations if ob.obligation_id in catch_up_ids}
    deltas = [c.delta for c in changes
              if c.kind is not LineChangeKind.ADDED and c.line_id not in caught_lines]
    pool = total([*(p.ob.current.total - p.base for p in plans), *deltas,
                  *(d.stated_price for d in fresh)], state.currency)
    residual = state.terms.residual_product_ids
    inputs = [AllocationInput(p.ob.obligation_id, _remaining_ssp(state, p, book, event),
                              p.ob.product_id in residual and not p.gone) for p in plans]
    inputs += [AllocationInput(d.obligation_id, d.standalone_selling_price,
                               d.product_id in residual) for d in fresh]
    if not any(i.residual or not i.standalone_selling_price.is_zero for i in inputs):
        plans, inputs = _settled(state, event, plans, changes, catch_up_ids)
    shares = {s.obligation_id: s for s in allocate(pool, inputs)}
    moved = tuple(
        replace(p.ob.with_segment(Segment(p.base + shares[p.ob.obligation_id].amount, p.basis,
                                          effective=at, anchor=at, base=p.base)),
                stated_price=p.stated,
                standalone_selling_price=shares[p.ob.obligation_id].standalone_selling_price)
        for p in plans)
    return (*moved, *(replace(d, segments=(replace(d.current, total=shares[
        d.obligation_id].amount),)) for d in fresh))


def _settled(state: RevenueContractState, event: ContractModified, plans: list[_Plan],
             changes: Sequence[LineChange],
             catch_up_ids: frozenset[str]) -> tuple[list[_Plan], list[AllocationInput]]:
    """Nothing remains to transfer: the change settles on the goods already transferred
    (their measure is complete, so it is recognised on the modification date), equally."""
    at = at_midnight(event.amendment.effective_date)
    changed = {c.line_id for c in changes if c.kind is not LineChangeKind.UNCHANGED}
    known = {p.ob.obligation_id for p in plans}
    skip = known | catch_up_ids | right_ids(state.terms)
    extra = [ob for ob in state.obligations
             if ob.obligation_id not in skip and not ob.pattern.variable
             and (ob.line_id in changed or not plans)]
    plans = [*plans, *(_Plan(ob, ob.current.basis, ob.stated_price,
                             recognised_main(ob, state.granularity, at, through=True),
                             gone=True)
                       for ob in extra)]
    one = Money.of(1, state.currency)
    return plans, [AllocationInput(p.ob.obligation_id, one) for p in plans]


def _plan(state: RevenueContractState, ob: ObligationState, change: LineChange | None,
          new_lines: dict[str, tuple[Step, ...]], event: ContractModified) -> _Plan:
    base = recognised_main(ob, state.granularity, at_midnight(event.amendment.effective_date),
                           through=True)
    if change is None or change.kind is LineChangeKind.UNCHANGED:
        return _Plan(ob, ob.current.basis, ob.stated_price, base, gone=False)
    if ob.obligation_id != ob.line_id or change.kind is LineChangeKind.REMOVED:
        return _Plan(ob, ob.current.basis, ob.stated_price, base, gone=True)
    basis = _rebased(ob, new_lines.get(ob.line_id), event)
    return _Plan(ob, basis, ob.stated_price + change.delta, base, gone=False)


def _remaining_ssp(state: RevenueContractState, plan: _Plan, book: PriceBook,
                   event: ContractModified) -> Money:
    """SSP of what remains of the obligation, measured on the modification date."""
    if plan.gone:
        return Money.zero(state.currency)
    day = event.amendment.effective_date
    basis, product = plan.basis, plan.ob.product_id
    required = product not in state.terms.residual_product_ids
    ssps = event.standalone_selling_prices
    if basis.pattern.priced_per_period:
        return ssp_value(basis.pattern, product, steps_from(basis.steps, day), book, ssps, day,
                         required)
    full = ssp_value(basis.pattern, product, basis.steps, book, ssps, day, required)
    done = progress(plan.ob, basis, state.granularity, at_midnight(day))
    return Money(full.amount * (1 - done), full.currency).quantize()


def _catch_up(state: RevenueContractState, changed: Sequence[ObligationState],
              at: datetime) -> tuple[tuple[str, Money], ...]:
    known = {ob.obligation_id for ob in state.obligations}
    found = []
    for ob in changed:
        if ob.obligation_id not in known:
            continue
        before = recognised(state.obligation(ob.obligation_id), state.granularity, at,
                            through=True)
        after = recognised(ob, state.granularity, just_after(at))
        found.append((ob.obligation_id, after - before))
    return tuple(found)
