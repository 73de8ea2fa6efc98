"""Booking: a subscription contract becomes a revenue contract (steps 1 to 5 of ASC 606).

Rules:
- One performance obligation per contract line, with the pattern of its product.
- The stated price of a line is its consideration (see `consideration`); the transaction
  price is the sum of the stated prices plus constrained variable consideration.
- SSPs are measured on the contract start date (taken as inception); a product without one
  is refused unless it is priced by the residual approach. A residual product's observed
  range (the SSP's low and high) is measured the same way, and the residual is checked
  against it (606-10-32-34(c)).
- Bundles of the terms are allocated their discount first (606-10-32-37, 32-38).
- Usage obligations stay out of the relative-SSP pool: their consideration is variable and
  allocated wholly to them as it is incurred (606-10-32-40).
- Variable consideration meeting 606-10-32-40 goes wholly to its obligation (or to a period
  component of it); the rest joins the pool (see `allocation`).
- Customer options that give a material right are obligations too (`material_right`):
  priced by SSP estimate, they join the pool; under the practical alternative, the renewed
  line's allocated price is shared with its right after the allocation.
- The revenue contract id is derived from the subscription contract id, so a replay finds it.
"""

from __future__ import annotations

from dataclasses import replace

from finsync.domain.contract import ContractLine
from finsync.domain.ids import derive_id
from finsync.domain.money import Money, total
from finsync.systems.revrec.allocation import (
    AllocatedShare,
    AllocationInput,
    SspRange,
    VariableConsideration,
    allocate,
)
from finsync.systems.revrec.consideration import (
    PriceBook,
    find_ssp,
    line_steps,
    ssp_value,
    value,
)
from finsync.systems.revrec.errors import AllocationError, ContractMismatchError
from finsync.systems.revrec.event import ContractBooked
from finsync.systems.revrec.material_right import material_rights, with_renewal_rights
from finsync.systems.revrec.obligation import (
    ObligationBasis,
    ObligationState,
    PeriodComponent,
    Revision,
    Segment,
)
from finsync.systems.revrec.state import RevenueContractState


def revenue_contract_id(subscription_contract_id: str) -> str:
    return derive_id("rc", subscription_contract_id)


def book_contract(event: ContractBooked) -> RevenueContractState:
    contract, terms = event.contract, event.terms
    book = PriceBook.of(contract)
    obligations = tuple(_obligation(line, event, book) for line in contract.lines)
    obligations += material_rights(contract, terms)  # options priced by SSP (606-10-55-44)
    pooled = [ob for ob in obligations if not ob.pattern.variable]
    variable = terms.variable_consideration
    _check_variable(variable, obligations, contract.currency)
    pool = total([ob.stated_price for ob in pooled]
                 + [vc.amount for vc in variable if vc.obligation_id is None], contract.currency)
    inputs = [_input(ob, event, book) for ob in pooled]
    shares = allocate(pool, inputs, terms.discount_line_ids, terms.bundles)
    allocated = {s.obligation_id: s for s in shares}
    booked = tuple(_allocated(ob, allocated.get(ob.obligation_id), event.event_id)
                   for ob in obligations)
    for vc in variable:
        booked = _with_variable(booked, vc, event.event_id)
    booked = with_renewal_rights(booked, terms, event.event_id)  # 606-10-55-45
    # applied as `state.applied` would, without building the state twice (bench/revrec.py)
    return RevenueContractState(revenue_contract_id(contract.id), contract, terms, booked,
                                inception_allocation=shares,
                                applied_event_ids=frozenset({event.event_id}))


def _obligation(line: ContractLine, event: ContractBooked, book: PriceBook) -> ObligationState:
    terms = event.terms
    pattern = terms.pattern_of(line.product_id)
    steps = line_steps(line)
    residual = line.product_id in terms.residual_product_ids
    ssp = ssp_value(pattern, line.product_id, steps, book, event.standalone_selling_prices,
                    event.contract.start_date, required=not (residual or pattern.variable))
    stated = value(pattern, steps, book)
    basis = ObligationBasis(pattern, steps, book)
    return ObligationState(line.line_id, line.line_id, line.product_id, event.contract.id, ssp,
                           stated, (Segment(Money.zero(book.currency), basis),))


def _input(ob: ObligationState, event: ContractBooked, book: PriceBook) -> AllocationInput:
    if ob.product_id not in event.terms.residual_product_ids:
        return AllocationInput(ob.obligation_id, ob.standalone_selling_price)
    return AllocationInput(ob.obligation_id, ob.standalone_selling_price, True,
                           _observed_range(ob, event, book))


def _observed_range(ob: ObligationState, event: ContractBooked,
                    book: PriceBook) -> SspRange | None:
    """The residual product's range of observed prices, on the obligation's basis."""
    ssp = find_ssp(event.standalone_selling_prices, ob.product_id, event.contract.start_date)
    if ssp is None or ssp.low is None or ssp.high is None:
        return None
    steps = ob.current.basis.steps
    return SspRange(ob.product_id, value(ob.pattern, steps, book, ssp.low),
                    value(ob.pattern, steps, book, ssp.high))


def _allocated(ob: ObligationState, share: AllocatedShare | None,
               event_id: str) -> ObligationState:
    if share is None:
        return ob.revised(event_id, "606-10-32-40", None, "usage: allocated as incurred")
    segment = replace(ob.current, total=share.amount)
    revision = Revision(ob.version + 1, event_id, share.paragraph, None,
                        f"inception: {share.method.value}")  # as `revised` makes it
    return replace(ob, segments=(segment,), revisions=(*ob.revisions, revision))


def _check_variable(variable: tuple[VariableConsideration, ...],
                    obligations: tuple[ObligationState, ...], currency: str) -> None:
    known = {ob.obligation_id for ob in obligations}
    for vc in variable:
        if vc.amount.currency != currency:
            raise ContractMismatchError(f"variable consideration {vc.consideration_id} is "
                                        f"not in {currency}")
        if vc.obligation_id is not None and vc.obligation_id not in known:
            raise AllocationError(f"variable consideration {vc.consideration_id} names an "
                                  f"unknown obligation {vc.obligation_id!r}")
        if vc.service_period is not None and vc.obligation_id is None:
            raise AllocationError(f"variable consideration {vc.consideration_id}: a distinct "
                                  "period needs its obligation")


def _with_variable(obligations: tuple[ObligationState, ...], vc: VariableConsideration,
                   event_id: str) -> tuple[ObligationState, ...]:
    if vc.obligation_id is None:
        return obligations
    return tuple(_add_variable(ob, vc, event_id) if ob.obligation_id == vc.obligation_id
                 else ob for ob in obligations)


def _add_variable(ob: ObligationState, vc: VariableConsideration,
                  event_id: str) -> ObligationState:
    detail = f"variable consideration {vc.consideration_id} {vc.amount}"
    if vc.service_period is None:
        segment = replace(ob.current, total=ob.current.total + vc.amount)
        ob = replace(ob, segments=(*ob.segments[:-1], segment))
    else:
        ob = ob.with_component(PeriodComponent(vc.consideration_id, vc.amount,
                                               vc.service_period))
    return ob.revised(event_id, "606-10-32-40", None, detail)
