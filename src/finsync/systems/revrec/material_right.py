"""Material rights: customer options as performance obligations (606-10-55-41 to 55-45).

Rules:
- An option is a performance obligation only when it gives a material right: a discount
  incremental to what the class of customer gets without the contract (55-42). An option
  whose incremental discount is zero or less (55-43: a marketing offer), or whose renewals
  leave nothing to defer, makes no obligation, and its events change nothing.
- SSP estimate (55-44, `STANDALONE_SELLING_PRICE`): SSP = expected purchases x incremental
  discount x likelihood of exercise, rounded once, half-even (Example 49: 50 x 30 % x 80 % =
  12). The right is obligation `<option id>` (product `material_right`, stated price zero)
  and joins the relative-SSP pool at booking like any other obligation (606-10-32-29).
- Practical alternative (55-45, `PRACTICAL_ALTERNATIVE`), for renewals of one line: the
  line's allocated price plus the consideration of the renewals expected (units of the term
  before x renewal rate x price) is allocated, by largest remainder, over the current term
  and the expected renewal terms in proportion to units x weight. The current term keeps its
  share; the rest of its price is the material right (Example 51: 1,000 - 780 = 220).
- Recognition. Nothing is recognised on a right until its option is exercised or lapses;
  with neither, it is forecast to lapse on its expiry date (so its schedule still sums).
  - Exercised, 55-44: its allocated amount joins the goods bought and is recognised as they
    transfer: at once on the exercise date, or evenly over the span the event names.
  - Exercised, 55-45: the renewal term becomes obligation `<line>+r<n>` with the units
    renewed. The chain (current term, the renewals so far, the right) is allocated again
    with the actual units and the renewals now expected from them (Example 51: "update the
    transaction price and the revenue recognised accordingly"): terms delivered are caught
    up on the exercise date, the new term gets its share, the right keeps the rest for the
    renewals to come (none left: zero).
  - Lapsed, either method: the right is recognised at once on the lapse date.
- An option is used once per step: a 55-44 right, and a lapsed one, take no further event;
  a renewal term is exercised in order, on or before the day it starts. Refusals are
  `CustomerOptionError`, naming the option and the paragraph.
- The right is outside modifications (`amendment` leaves it as it is): its SSP is an
  estimate made at inception, not a price list the modification date can measure again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal

from finsync.domain.clock import Period
from finsync.domain.contract import ContractLine, SubscriptionContract
from finsync.domain.money import Money, total
from finsync.systems.revrec.consideration import Step
from finsync.systems.revrec.errors import CustomerOptionError
from finsync.systems.revrec.event import OptionExercised, OptionLapsed
from finsync.systems.revrec.obligation import ObligationBasis, ObligationState, Segment
from finsync.systems.revrec.obligation_id import renewal_id
from finsync.systems.revrec.option import CustomerOption, OptionMethod, RenewalTerm
from finsync.systems.revrec.pattern import RecognitionPattern
from finsync.systems.revrec.state import RevenueContractState
from finsync.systems.revrec.terms import RecognitionTerms
from finsync.systems.revrec.timegrid import at_midnight

MATERIAL_RIGHT = "material_right"  # the product of a material-right obligation
_LAPSED = "lapsed"
_EXERCISED = "exercised"


def right_ids(terms: RecognitionTerms) -> frozenset[str]:
    return frozenset(option.option_id for option in terms.options)


def _point(day: date, currency: str) -> ObligationBasis:
    """Recognised at once on `day`."""
    step = Step(Period(day, day + timedelta(days=1)), 1, Money.zero(currency))
    return ObligationBasis(RecognitionPattern.POINT_IN_TIME, (step,))


def estimated_ssp(option: CustomerOption, currency: str) -> Money:
    """55-44: expected purchases x incremental discount x likelihood, rounded once."""
    assert option.expected_purchases is not None  # checked with the terms
    share = option.incremental_discount_percent * option.likelihood_percent / 10_000
    return Money(option.expected_purchases.amount * share, currency).quantize()


def material_rights(contract: SubscriptionContract,
                    terms: RecognitionTerms) -> tuple[ObligationState, ...]:
    """The obligations of the options priced by SSP estimate that give a material right,
    to join the pool at booking (allocated there like any obligation)."""
    check_options(contract, terms)
    found = []
    for option in terms.options:
        if option.method is not OptionMethod.STANDALONE_SELLING_PRICE:
            continue
        ssp = estimated_ssp(option, contract.currency)
        if ssp.amount <= 0:
            continue  # 55-43: no discount beyond what anyone gets: a marketing offer
        zero = Money.zero(contract.currency)
        found.append(ObligationState(option.option_id, option.option_id, MATERIAL_RIGHT,
                                     contract.id, ssp, zero,
                                     (Segment(zero, _point(option.expires_on,
                                                           contract.currency)),)))
    return tuple(found)


def with_renewal_rights(obligations: tuple[ObligationState, ...], terms: RecognitionTerms,
                        event_id: str) -> tuple[ObligationState, ...]:
    """55-45 at booking: each renewal option's line keeps its share of the expected
    consideration; the rest of its allocated price becomes the material right."""
    for option in terms.options:
        if option.method is not OptionMethod.PRACTICAL_ALTERNATIVE:
            continue
        line = next(ob for ob in obligations if ob.obligation_id == option.obligation_id)
        shares = _expected_shares(option, line.allocated_price, [line.current.basis.units_total])
        right = line.allocated_price - shares[0]
        if right.amount <= 0:
            continue  # the renewals are not priced below the current term: no right
        detail = f"practical alternative: {right} deferred to material right {option.option_id}"
        kept = replace(line, segments=(replace(line.current, total=shares[0]),))
        new = ObligationState(option.option_id, option.option_id, MATERIAL_RIGHT,
                              line.group, Money.zero(line.currency), Money.zero(line.currency),
                              (Segment(right, _point(option.expires_on, line.currency)),))
        obligations = (*(kept.revised(event_id, "606-10-55-45", None, detail)
                         if ob is line else ob for ob in obligations),
                       new.revised(event_id, "606-10-55-45", None, "inception: "
                                   f"{option.method.value}"))
    return obligations


def _expected_shares(option: CustomerOption, pool: Money,
                     actual_units: Sequence[int]) -> tuple[Money, ...]:
    """`pool` (what the chain holds) plus the consideration of the renewals still expected,
    allocated over every term by units x weight. `actual_units`: the current term's units,
    then those of each renewal exercised; later terms expect units x renewal rate."""
    assert option.weight is not None  # checked with the terms
    units = [Decimal(u) for u in actual_units]
    expected = Decimal(0)
    for term in option.renewals[len(actual_units) - 1:]:
        units.append(units[-1] * term.renewal_rate_percent / 100)
        expected += units[-1] * term.unit_price.amount
    weights = [option.weight.amount * units[0]]
    weights += [t.weight.amount * u for t, u in zip(option.renewals, units[1:], strict=True)]
    whole = (pool + Money(expected, pool.currency)).quantize()
    if sum(weights) <= 0:
        return tuple(whole if i == 0 else Money.zero(pool.currency)
                     for i in range(len(weights)))
    return whole.allocate(weights)


def _option(state: RevenueContractState, option_id: str) -> CustomerOption:
    for option in state.terms.options:
        if option.option_id == option_id:
            return option
    raise CustomerOptionError(f"{state.revenue_contract_id} has no customer option "
                              f"{option_id!r}")


def _right(state: RevenueContractState, option: CustomerOption) -> ObligationState | None:
    """The option's material-right obligation; None when it gives none (55-43)."""
    found = [ob for ob in state.obligations if ob.obligation_id == option.option_id]
    if not found:
        return None
    right = found[0]
    # Its revisions say what happened to it (a price change may add segments, too).
    closing = (_LAPSED, _EXERCISED) if (
        option.method is OptionMethod.STANDALONE_SELLING_PRICE) else (_LAPSED,)
    if any(r.detail.startswith(closing) for r in right.revisions):
        raise CustomerOptionError(f"option {option.option_id} has been exercised or has "
                                  f"lapsed already ({option.paragraph})")
    return right


def apply_option_lapsed(state: RevenueContractState,
                        event: OptionLapsed) -> RevenueContractState:
    option = _option(state, event.option_id)
    right = _right(state, option)
    if right is None:
        return state.applied(event.event_id)
    at = at_midnight(event.lapsed_on)
    segment = Segment(right.current.total, _point(event.lapsed_on, state.currency),
                      effective=at)
    right = right.with_segment(segment).revised(
        event.event_id, option.paragraph, at,
        f"{_LAPSED} on {event.lapsed_on}: {right.current.total} recognised")
    return state.with_obligations((right,)).applied(event.event_id)


def apply_option_exercised(state: RevenueContractState,
                           event: OptionExercised) -> RevenueContractState:
    option = _option(state, event.option_id)
    right = _right(state, option)
    if right is None:
        return state.applied(event.event_id)
    if option.method is OptionMethod.STANDALONE_SELLING_PRICE:
        return _bought(state, event, option, right)
    return _renewed(state, event, option, right)


def _bought(state: RevenueContractState, event: OptionExercised, option: CustomerOption,
            right: ObligationState) -> RevenueContractState:
    """55-44: the right's amount is recognised as the goods bought transfer."""
    if event.exercised_on >= option.expires_on:
        raise CustomerOptionError(f"option {option.option_id} expired on {option.expires_on}"
                                  f"; exercised on {event.exercised_on}")
    span = event.service_period
    basis = _point(event.exercised_on, state.currency) if span is None else ObligationBasis(
        RecognitionPattern.RATABLE, (Step(span, 1, Money.zero(state.currency)),))
    at = at_midnight(event.exercised_on)
    right = right.with_segment(Segment(right.current.total, basis, effective=at))
    right = right.revised(event.event_id, option.paragraph, at,
                          f"{_EXERCISED}: {right.current.total} joins the goods bought")
    return state.with_obligations((right,)).applied(event.event_id)


def _chain(state: RevenueContractState, option: CustomerOption) -> list[ObligationState]:
    """The renewed line's obligation, then its renewal terms exercised so far, in order."""
    line = state.obligation(option.obligation_id or "")
    marker = f"renewal of {option.option_id}:"
    return [line, *(ob for ob in state.obligations
                    if ob.revisions and ob.revisions[0].detail.startswith(marker))]


def _renewed(state: RevenueContractState, event: OptionExercised, option: CustomerOption,
             right: ObligationState) -> RevenueContractState:
    """55-45: the next renewal term starts; the chain is allocated again on actual units."""
    chain = _chain(state, option)
    term_no = len(chain)
    if term_no > len(option.renewals):
        raise CustomerOptionError(f"option {option.option_id}: every renewal term is "
                                  "exercised already (606-10-55-45)")
    term = option.renewals[term_no - 1]
    if event.exercised_on > term.span.start:
        raise CustomerOptionError(f"option {option.option_id}: renewal term {term_no} starts "
                                  f"on {term.span.start}, exercised on {event.exercised_on}")
    units = chain[-1].current.basis.units_total if event.quantity is None else event.quantity
    if units < 1:
        raise CustomerOptionError(f"option {option.option_id}: renew at least one unit, or "
                                  "record the option as lapsed")
    stated = Money(term.unit_price.amount * units, state.currency).quantize()
    pool = total([*(ob.current.total for ob in chain), right.current.total, stated],
                 state.currency)
    shares = _expected_shares(option, pool, [*(ob.current.basis.units_total for ob in chain),
                                             units])
    at = at_midnight(event.exercised_on)
    caught = [_caught_up(ob, share, event.event_id, at, term_no)
              for ob, share in zip(chain, shares, strict=False) if ob.current.total != share]
    fresh = _renewal(state, option, chain[0], term, term_no, units, stated,
                     shares[term_no]).revised(event.event_id, option.paragraph, at,
                                              f"renewal of {option.option_id}: term {term_no},"
                                              f" {units} units")
    rest = pool - total(list(shares[:term_no + 1]), state.currency)
    if rest.amount < 0:
        raise CustomerOptionError(f"option {option.option_id}: the renewals expected would "
                                  f"take {-rest} more than the contract holds (606-10-55-45)")
    later = option.renewals[term_no].span.start if term_no < len(option.renewals) else (
        term.span.start)
    right = right.with_segment(Segment(rest, _point(later, state.currency), effective=at))
    right = right.revised(event.event_id, option.paragraph, at,
                          f"renewal term {term_no}: {right.current.total} left for later terms")
    return state.with_obligations((*caught, fresh, right)).applied(event.event_id)


def _caught_up(ob: ObligationState, share: Money, event_id: str, at: datetime,
               term_no: int) -> ObligationState:
    change = share - ob.current.total
    ob = ob.with_segment(replace(ob.current, total=share, effective=at))
    return ob.revised(event_id, "606-10-55-45", at,
                      f"renewal term {term_no} on actual units: {change} caught up")


def _renewal(state: RevenueContractState, option: CustomerOption, line: ObligationState,
             term: RenewalTerm, term_no: int, units: int, stated: Money,
             share: Money) -> ObligationState:
    taken = {ob.obligation_id for ob in state.obligations} | {
        li.line_id for li in state.contract.lines}
    basis = ObligationBasis(line.pattern, (Step(term.span, units, term.unit_price),))
    ssp = Money(term.weight.amount * units, state.currency).quantize()
    return ObligationState(renewal_id(line.line_id, term_no, taken), line.line_id,
                           line.product_id, line.group, ssp, stated, (Segment(share, basis),))


def check_options(contract: SubscriptionContract, terms: RecognitionTerms) -> None:
    """Refuse options that cannot be accounted for, naming the option and what is wrong."""
    lines = {li.line_id: li for li in contract.lines}
    seen: set[str] = set()
    for option in terms.options:
        name = f"option {option.option_id}"
        if option.option_id in seen or option.option_id in lines:
            raise CustomerOptionError(f"{name}: its id is taken by another option or a line")
        seen.add(option.option_id)
        if option.expires_on <= contract.start_date:
            raise CustomerOptionError(f"{name}: expires on {option.expires_on}, not after the "
                                      f"contract starts ({contract.start_date})")
        percents = (option.discount_percent, option.discount_available_anyway_percent,
                    option.likelihood_percent, *(t.renewal_rate_percent
                                                 for t in option.renewals))
        if any(not 0 <= p <= 100 for p in percents):
            raise CustomerOptionError(f"{name}: a percentage outside 0..100")
        amounts = [a for a in (option.expected_purchases, option.weight) if a is not None]
        amounts += [m for t in option.renewals for m in (t.unit_price, t.weight)]
        if any(a.currency != contract.currency or a.amount < 0 for a in amounts):
            raise CustomerOptionError(f"{name}: amounts must be positive {contract.currency}")
        if option.method is OptionMethod.STANDALONE_SELLING_PRICE:
            if option.expected_purchases is None:
                raise CustomerOptionError(f"{name}: the SSP estimate needs the purchases "
                                          "expected (606-10-55-44)")
        else:
            _check_renewals(option, name, lines.get(option.obligation_id or ""), terms)


def _check_renewals(option: CustomerOption, name: str, line: ContractLine | None,
                    terms: RecognitionTerms) -> None:
    if line is None or terms.pattern_of(line.product_id).variable or option.weight is None or (
            not option.renewals):
        raise CustomerOptionError(f"{name}: the practical alternative needs the line renewed, "
                                  "its weight and the renewal terms (606-10-55-45)")
    starts = [option.expires_on, *(t.span.start for t in option.renewals)]
    ends = [option.expires_on, *(t.span.end for t in option.renewals)]
    if any(s < e for s, e in zip(starts[1:], ends[:-1], strict=True)):
        raise CustomerOptionError(f"{name}: renewal terms must follow one another, the first "
                                  "from the option's expiry on")
