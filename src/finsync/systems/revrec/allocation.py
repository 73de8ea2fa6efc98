"""Allocation of a transaction price to performance obligations (606-10-32-28 to 32-41).

Rules:
- Default: relative standalone selling price (606-10-32-31), split by largest remainder
  (`Money.allocate`), so the shares sum exactly to the price; ties go to the earlier
  obligation, in contract-line order. A lone obligation takes the whole price, even when its
  SSP rounds to zero over a short service (one day of a small annual price).
- A discount allocated to only some obligations (606-10-32-37), when the caller states the
  criteria are met: every other obligation gets its SSP, the named ones share what is left by
  relative SSP. Refused if there is no discount or what is left is negative.
- Bundles (606-10-32-37(b)): obligations regularly sold together at one observable price.
  Each bundle weighs as one good at its bundle price beside the other obligations at their
  SSPs; its share is then split among its obligations by relative SSP. When the contract's
  discount is the bundles' own, the others get exactly their SSP and each bundle its price
  (Example 34 Case A); a discount beyond (or short of) the bundles' is spread over every
  obligation in proportion (606-10-32-36), the bundled ones weighing at their bundle price.
  A bundle needs two or more obligations, not all of them, none residual, none in another
  bundle, and a price below the sum of its SSPs (else it carries no discount).
- Residual approach (606-10-32-34(c)) for obligations whose SSP is highly variable or
  uncertain (named by the caller): every other obligation gets its SSP, each bundle its price
  (the discount is allocated first, 606-10-32-38), the residual ones share what is left (by
  their SSP estimates, or equally). Each residual share is checked against its product's
  observed range of selling prices (`SspRange`, measured like the SSP): outside it, the
  allocation is refused (`ResidualOutOfRangeError`, Example 34 Case C). Refused too when
  nothing, or less than nothing, is left, or when every obligation would be residual.
- A residual approach together with a discount for a subset stated without the bundle's
  price is refused: what the subset and the residual goods each get depends on the price
  the subset sells for (606-10-32-38); state it as a bundle.
- Variable consideration whose terms relate to one obligation (or one distinct period of a
  series) and whose allocation meets 606-10-32-40 goes wholly there and stays out of the
  pool; other variable consideration joins the pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from finsync.domain.clock import Period
from finsync.domain.money import Money, total
from finsync.systems.revrec.errors import AllocationError, ResidualOutOfRangeError


class AllocationMethod(StrEnum):
    RELATIVE_SSP = "relative_ssp"
    DISCOUNT_EXCLUDED = "discount_excluded"
    DISCOUNT_SUBSET = "discount_subset"
    RESIDUAL_OBSERVABLE = "residual_observable"
    RESIDUAL = "residual"
    BUNDLE = "bundle"


PARAGRAPHS: dict[AllocationMethod, str] = {
    AllocationMethod.RELATIVE_SSP: "606-10-32-31",
    AllocationMethod.DISCOUNT_EXCLUDED: "606-10-32-37",
    AllocationMethod.DISCOUNT_SUBSET: "606-10-32-37",
    AllocationMethod.RESIDUAL_OBSERVABLE: "606-10-32-34(c)",
    AllocationMethod.RESIDUAL: "606-10-32-34(c)",
    AllocationMethod.BUNDLE: "606-10-32-37",
}


@dataclass(frozen=True, slots=True)
class VariableConsideration:
    """Estimated (and constrained, 606-10-32-11) variable consideration.

    `obligation_id` set means the 606-10-32-40 criteria are met for that obligation;
    `service_period` further narrows it to one distinct period of a series.
    """

    consideration_id: str
    amount: Money
    obligation_id: str | None = None
    service_period: Period | None = None


@dataclass(frozen=True, slots=True)
class SspRange:
    """The observed range of a product's selling prices, measured on the obligation's basis
    (as its SSP is: quantity, service period) on the measurement date."""

    product_id: str
    low: Money
    high: Money

    def __post_init__(self) -> None:
        if self.high < self.low:
            raise AllocationError(f"the SSP range of {self.product_id} runs from {self.low} "
                                  f"down to {self.high}: low must not exceed high")

    def holds(self, amount: Money) -> bool:
        return self.low <= amount <= self.high


@dataclass(frozen=True, slots=True)
class Bundle:
    """Obligations regularly sold together at one observable price (606-10-32-37(b)); the
    price is for them as the contract states them (their quantities and service periods)."""

    bundle_id: str
    obligation_ids: frozenset[str]
    price: Money


@dataclass(frozen=True, slots=True)
class AllocationInput:
    obligation_id: str
    standalone_selling_price: Money
    residual: bool = False
    ssp_range: SspRange | None = None


@dataclass(frozen=True, slots=True)
class AllocatedShare:
    obligation_id: str
    standalone_selling_price: Money
    amount: Money
    method: AllocationMethod

    @property
    def paragraph(self) -> str:
        return PARAGRAPHS[self.method]


def allocate(pool: Money, inputs: Sequence[AllocationInput],
             discount_to: frozenset[str] = frozenset(),
             bundles: Sequence[Bundle] = ()) -> tuple[AllocatedShare, ...]:
    """Allocate `pool` to the obligations (see the module rules)."""
    if not inputs:
        if not pool.is_zero:
            raise AllocationError(f"{pool} to allocate but no performance obligation")
        return ()
    if pool.quantize() != pool:
        raise AllocationError(f"the transaction price {pool} is not in minor units")
    if bundles:
        if discount_to:
            raise AllocationError("state a discount either by its obligations or by the "
                                  "prices of the bundles they are sold in, not both")
        return _bundled(pool, inputs, bundles)
    if any(i.residual for i in inputs):
        if discount_to:
            raise AllocationError("a residual approach with a discount for some obligations "
                                  "needs the price of the bundle they are sold in "
                                  "(606-10-32-38): state it as a bundle")
        return _residual(pool, inputs)
    if discount_to:
        return _discount_subset(pool, inputs, discount_to)
    return _relative(pool, inputs, AllocationMethod.RELATIVE_SSP)


def _relative(pool: Money, inputs: Sequence[AllocationInput],
              method: AllocationMethod) -> tuple[AllocatedShare, ...]:
    weights = [i.standalone_selling_price.amount for i in inputs]
    if any(w < 0 for w in weights):
        raise AllocationError("a standalone selling price cannot be negative")
    if len(inputs) == 1:  # one obligation takes the whole price: no SSP ratio is needed
        return (AllocatedShare(inputs[0].obligation_id, inputs[0].standalone_selling_price,
                               pool, method),)
    if sum(weights) == 0:
        if pool.is_zero:
            return tuple(AllocatedShare(i.obligation_id, i.standalone_selling_price, pool,
                                        method) for i in inputs)
        raise AllocationError(f"cannot allocate {pool} by relative SSP: every SSP is zero")
    parts = pool.allocate(weights)
    return tuple(AllocatedShare(i.obligation_id, i.standalone_selling_price, part, method)
                 for i, part in zip(inputs, parts, strict=True))


def _at_ssp(inputs: Sequence[AllocationInput],
            method: AllocationMethod) -> tuple[AllocatedShare, ...]:
    return tuple(AllocatedShare(i.obligation_id, i.standalone_selling_price,
                                i.standalone_selling_price.quantize(), method) for i in inputs)


def _discount_subset(pool: Money, inputs: Sequence[AllocationInput],
                     discount_to: frozenset[str]) -> tuple[AllocatedShare, ...]:
    ids = {i.obligation_id for i in inputs}
    if not discount_to <= ids or discount_to == ids:
        raise AllocationError("a discount for some obligations must name a proper subset "
                              f"of {sorted(ids)}, not {sorted(discount_to)}")
    others = [i for i in inputs if i.obligation_id not in discount_to]
    subset = [i for i in inputs if i.obligation_id in discount_to]
    whole_ssp = total([i.standalone_selling_price for i in inputs], pool.currency)
    if not pool < whole_ssp.quantize():
        raise AllocationError(f"no discount to allocate: price {pool}, SSPs {whole_ssp}")
    fixed = _at_ssp(others, AllocationMethod.DISCOUNT_EXCLUDED)
    left = pool - total([s.amount for s in fixed], pool.currency)
    if left.amount < 0:
        raise AllocationError(f"the discount exceeds the SSPs of {sorted(discount_to)}")
    shared = _relative(left, subset, AllocationMethod.DISCOUNT_SUBSET)
    return _in_order(inputs, (*fixed, *shared))


def _residual(pool: Money, inputs: Sequence[AllocationInput]) -> tuple[AllocatedShare, ...]:
    observable = [i for i in inputs if not i.residual]
    residual = [i for i in inputs if i.residual]
    if not observable:
        raise AllocationError("the residual approach needs other obligations with "
                              "observable SSPs")
    fixed = _at_ssp(observable, AllocationMethod.RESIDUAL_OBSERVABLE)
    left = pool - total([s.amount for s in fixed], pool.currency)
    if len(residual) == 1:  # checked against its range first: the error says more
        _check_range(residual[0], left)
    if left.amount <= 0:
        raise AllocationError(f"the residual approach leaves {left} for "
                              f"{[i.obligation_id for i in residual]}")
    estimates = [i.standalone_selling_price.amount for i in residual]
    weights = estimates if sum(estimates) > 0 else [1] * len(residual)
    parts = left.allocate(weights)
    for item, part in zip(residual, parts, strict=True):
        _check_range(item, part)
    shared = tuple(AllocatedShare(i.obligation_id, i.standalone_selling_price, part,
                                  AllocationMethod.RESIDUAL)
                   for i, part in zip(residual, parts, strict=True))
    return _in_order(inputs, (*fixed, *shared))


def _check_range(item: AllocationInput, residual: Money) -> None:
    observed = item.ssp_range
    if observed is not None and not observed.holds(residual):
        raise ResidualOutOfRangeError(observed.product_id, item.obligation_id, residual,
                                      observed.low, observed.high)


def _bundled(pool: Money, inputs: Sequence[AllocationInput],
             bundles: Sequence[Bundle]) -> tuple[AllocatedShare, ...]:
    """Each bundle first weighs as one good at its price; its share is then split among its
    obligations by relative SSP (606-10-32-37; before any residual, 606-10-32-38)."""
    _check_bundles(pool, inputs, bundles)
    level = _bundle_level(inputs, bundles)
    if any(i.residual for i in inputs):
        outer = _residual(pool, level)
    else:
        outer = _singles_exact(_relative(pool, level, AllocationMethod.RELATIVE_SSP))
    by_id = {s.obligation_id: s for s in outer}
    names = {b.bundle_id for b in bundles}
    shares = [s for s in outer if s.obligation_id not in names]
    members: dict[str, list[AllocationInput]] = {name: [] for name in names}
    of = {ob_id: b.bundle_id for b in bundles for ob_id in b.obligation_ids}
    for item in inputs:  # in line order, as ties of largest remainder go
        if item.obligation_id in of:
            members[of[item.obligation_id]].append(item)
    for bundle in bundles:
        shares += _relative(by_id[bundle.bundle_id].amount, members[bundle.bundle_id],
                            AllocationMethod.BUNDLE)
    return _in_order(inputs, shares)


def _bundle_level(inputs: Sequence[AllocationInput],
                  bundles: Sequence[Bundle]) -> list[AllocationInput]:
    """The obligations outside bundles, and each bundle as one input at its price, placed
    where its first obligation stands (ties of largest remainder go by that order)."""
    of = {ob_id: b for b in bundles for ob_id in b.obligation_ids}
    level: list[AllocationInput] = []
    placed: set[str] = set()
    for item in inputs:
        bundle = of.get(item.obligation_id)
        if bundle is None:
            level.append(item)
        elif bundle.bundle_id not in placed:
            placed.add(bundle.bundle_id)
            level.append(AllocationInput(bundle.bundle_id, bundle.price))
    return level


def _singles_exact(shares: Sequence[AllocatedShare]) -> tuple[AllocatedShare, ...]:
    """An obligation outside the bundles that gets exactly its SSP bears none of the
    discount (606-10-32-37); one that gets less or more shares it by relative SSP."""
    return tuple(replace(s, method=AllocationMethod.DISCOUNT_EXCLUDED)
                 if s.amount == s.standalone_selling_price.quantize() else s for s in shares)


def _check_bundles(pool: Money, inputs: Sequence[AllocationInput],
                   bundles: Sequence[Bundle]) -> None:
    ssp = {i.obligation_id: i for i in inputs}
    seen: dict[str, str] = {}
    names: set[str] = set()
    for bundle in bundles:
        if bundle.bundle_id in ssp or bundle.bundle_id in names:
            raise AllocationError(f"bundle id {bundle.bundle_id!r} is already used")
        names.add(bundle.bundle_id)
        _check_bundle(pool, bundle, ssp, seen)
    outside = [i for i in inputs if i.obligation_id not in seen]
    if not outside:
        raise AllocationError("bundles cover every obligation: a discount goes to one or "
                              "more, but not all, obligations (606-10-32-37); without one "
                              "outside, allocate by relative SSP")


def _check_bundle(pool: Money, bundle: Bundle, ssp: dict[str, AllocationInput],
                  seen: dict[str, str]) -> None:
    name = bundle.bundle_id
    if len(bundle.obligation_ids) < 2:
        raise AllocationError(f"bundle {name} needs two or more obligations, not "
                              f"{sorted(bundle.obligation_ids)}")
    if bundle.price.currency != pool.currency or bundle.price.quantize() != bundle.price or (
            bundle.price.amount < 0):
        raise AllocationError(f"bundle {name}: price {bundle.price} must be {pool.currency} "
                              "in minor units, not negative")
    for ob_id in sorted(bundle.obligation_ids):
        _check_member(name, ob_id, ssp, seen)
        seen[ob_id] = name
    whole = total([ssp[i].standalone_selling_price for i in bundle.obligation_ids],
                  pool.currency)
    if not bundle.price < whole:
        raise AllocationError(f"bundle {name} sells for {bundle.price}, not below the SSPs "
                              f"of its obligations ({whole}): it carries no discount "
                              "(606-10-32-37(b))")


def _check_member(name: str, ob_id: str, ssp: dict[str, AllocationInput],
                  seen: dict[str, str]) -> None:
    if ob_id not in ssp:
        raise AllocationError(f"bundle {name} names {ob_id!r}, which is not an obligation "
                              "in the allocation (unknown, or usage: allocated as incurred)")
    if ob_id in seen:
        raise AllocationError(f"obligation {ob_id} is in bundles {seen[ob_id]} and {name}; "
                              "an obligation is in one bundle at most")
    if ssp[ob_id].residual:
        raise AllocationError(f"bundle {name} names {ob_id}, priced by the residual "
                              "approach: a bundle's discount is split by its obligations' "
                              "observable SSPs")


def _in_order(inputs: Sequence[AllocationInput],
              shares: Sequence[AllocatedShare]) -> tuple[AllocatedShare, ...]:
    by_id = {s.obligation_id: s for s in shares}
    return tuple(by_id[i.obligation_id] for i in inputs)
