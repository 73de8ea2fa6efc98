"""Measures of progress as reported: percent complete, or costs incurred over total expected
costs (the input method, 606-10-55-20/21; IFRS 15 B18-B19).

Rules:
- A measure is a fraction in [0, 1], kept per obligation by date (`progress_reports`); the
  latest one before an instant is in force (`progress`). Only progress obligations take one.
- Percent complete: 0..100 as reported.
- From costs: (costs incurred - uninstalled materials) / (total expected costs - uninstalled
  materials). Costs are in the contract's currency; total expected costs are positive;
  costs incurred lie between 0 and the total expected (an overrun is a new estimate of the
  total, to be reported as one). The inputs are kept (`cost_reports`) beside the measure.
- Rounding: with `progress_rounding` in the terms (a step in percent that divides 100, e.g.
  0.1), the measure is rounded DOWN to a multiple of the step before any revenue is
  computed, whichever way it was reported. Down, because a measure of progress must not
  overstate performance (606-10-55-21, IFRS 15 B19): rounding half-up would reach 100 %, and
  recognise the whole price, while costs remain (999,600 of 1,000,000 is 99.96 %, 100.0 %
  half-up); down reaches 100 % only when every expected cost is incurred. What it leaves
  out (less than one step) comes with the next report.
- Uninstalled materials (606-10-55-21(b); ASC 606 Example 19, 606-10-55-187 to 55-192):
  goods that are not distinct, whose control passes to the customer before they are
  installed, whose cost is significant and which the entity neither designs nor makes. Their
  cost is left out of both costs incurred and total expected costs, and revenue equal to it
  is recognised (zero margin) on the report's date: a component of one day, while the main
  allocation falls by as much, so the margin is earned on the rest of the work only. It is
  stated cumulatively (every such material so far, installed since or not: it stays out of
  the measure) and may not fall; it lies between 0 and the costs incurred, below the total
  expected, and not above what is left of the main price.
- Cost reports come in date order (a measure is cumulative, and materials recognised at cost
  stay recognised); percent reports may come in any order.
- Every report revises the obligation (606-10-25-31; 606-10-55-21 with materials at cost).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

from finsync.domain.clock import Period
from finsync.domain.money import Money
from finsync.systems.revrec.errors import ContractMismatchError, MeasureError
from finsync.systems.revrec.event import CostsReported, ProgressReported
from finsync.systems.revrec.obligation import CostReport, ObligationState, PeriodComponent
from finsync.systems.revrec.pattern import RecognitionPattern
from finsync.systems.revrec.state import RevenueContractState
from finsync.systems.revrec.terms import RecognitionTerms
from finsync.systems.revrec.timegrid import at_midnight

_HUNDRED = Decimal(100)


def rounded(terms: RecognitionTerms, numerator: Decimal, denominator: Decimal) -> Decimal:
    """numerator / denominator as a fraction, rounded down to the terms' step (exact: the
    whole number of steps is an integer division, done before any division by the step)."""
    step = terms.progress_rounding
    if step is None:
        return numerator / denominator
    steps = (numerator * (_HUNDRED / step)) // denominator
    return steps * step / _HUNDRED


def report_progress(state: RevenueContractState,
                    event: ProgressReported) -> RevenueContractState:
    ob = _progress_obligation(state, event.obligation_id)
    percent = event.percent_complete
    if not 0 <= percent <= 100:
        raise MeasureError(f"{ob.obligation_id}: percent complete must be in 0..100, not "
                           f"{percent}")
    measure = rounded(state.terms, percent, _HUNDRED)
    ob = _with_measure(ob, event.as_of, measure)
    ob = ob.revised(event.event_id, "606-10-25-31", at_midnight(event.as_of),
                    f"{percent}% complete{_rounding_note(state.terms)}: measure {measure}")
    return state.with_obligations((ob,)).applied(event.event_id)


def report_costs(state: RevenueContractState, event: CostsReported) -> RevenueContractState:
    ob = _progress_obligation(state, event.obligation_id)
    materials = event.uninstalled_materials or Money.zero(state.currency)
    _check_costs(state, ob, event, materials)
    done = event.costs_incurred - materials
    whole = event.total_expected_costs - materials
    measure = rounded(state.terms, done.amount, whole.amount)
    report = CostReport(event.event_id, event.as_of, event.costs_incurred,
                        event.total_expected_costs, materials, measure)
    ob = replace(_with_measure(ob, event.as_of, measure),
                 cost_reports=(*ob.cost_reports, report))
    added = materials - _materials(state.obligation(event.obligation_id))
    cause = "606-10-25-31"
    if not added.is_zero:
        ob, cause = _at_cost(ob, event, added), "606-10-55-21"
    detail = (f"costs {done} / {whole}{_materials_note(materials)}: {measure * _HUNDRED}% "
              f"complete{_rounding_note(state.terms)}")
    ob = ob.revised(event.event_id, cause, at_midnight(event.as_of), detail)
    return state.with_obligations((ob,)).applied(event.event_id)


def _progress_obligation(state: RevenueContractState, obligation_id: str) -> ObligationState:
    ob = state.obligation(obligation_id)
    if ob.pattern is not RecognitionPattern.PROGRESS:
        raise MeasureError(f"{ob.obligation_id} is recognised {ob.pattern.value}: a measure "
                           "of progress needs a progress obligation")
    return ob


def _with_measure(ob: ObligationState, on: date, measure: Decimal) -> ObligationState:
    reports = sorted((*ob.progress_reports, (on, measure)), key=lambda r: r[0])
    return replace(ob, progress_reports=tuple(reports))


def _materials(ob: ObligationState) -> Money:
    if not ob.cost_reports:
        return Money.zero(ob.currency)
    return ob.cost_reports[-1].uninstalled_materials


def _check_costs(state: RevenueContractState, ob: ObligationState, event: CostsReported,
                 materials: Money) -> None:
    amounts = (event.costs_incurred, event.total_expected_costs, materials)
    if any(m.currency != state.currency for m in amounts):
        raise ContractMismatchError(f"costs of {ob.obligation_id} must be in "
                                    f"{state.currency}")
    incurred, expected = event.costs_incurred.amount, event.total_expected_costs.amount
    if not 0 <= incurred <= expected or expected <= 0:
        raise MeasureError(f"{ob.obligation_id}: costs incurred {event.costs_incurred} must "
                           f"lie between 0 and total expected costs "
                           f"{event.total_expected_costs} (> 0): an overrun is a new estimate")
    if not 0 <= materials.amount <= incurred or materials.amount >= expected:
        raise MeasureError(f"{ob.obligation_id}: uninstalled materials {materials} must lie "
                           "between 0 and the costs incurred, below the total expected "
                           "(606-10-55-21(b))")
    latest = ob.cost_reports[-1] if ob.cost_reports else None
    if latest is not None and event.as_of < latest.as_of:
        raise MeasureError(f"{ob.obligation_id}: a cost report as of {event.as_of} comes "
                           f"after one as of {latest.as_of}; cost reports come in date order")
    if materials < _materials(ob):
        raise MeasureError(f"{ob.obligation_id}: uninstalled materials {materials} fall below "
                           f"the {_materials(ob)} already recognised at cost "
                           "(606-10-55-21(b): stated cumulatively)")


def _at_cost(ob: ObligationState, event: CostsReported, added: Money) -> ObligationState:
    """Revenue equal to the materials' cost, on the report's day; the main price falls by
    as much, so no margin is earned on them (606-10-55-21(b))."""
    if ob.current.total < added:
        raise MeasureError(f"{ob.obligation_id}: uninstalled materials {added} exceed the "
                           f"{ob.current.total} left of the price to measure by progress")
    at = at_midnight(event.as_of)
    day = Period(event.as_of, event.as_of + timedelta(days=1))
    segment = replace(ob.current, total=ob.current.total - added, effective=at)
    ob = ob.with_segment(segment)
    return ob.with_component(PeriodComponent(f"{event.event_id}:materials", added, day, at))


def _materials_note(materials: Money) -> str:
    return "" if materials.is_zero else f" (uninstalled materials {materials} left out)"


def _rounding_note(terms: RecognitionTerms) -> str:
    step = terms.progress_rounding
    return "" if step is None else f" (rounded down to {step}%)"
