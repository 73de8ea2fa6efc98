"""Allocation of a transaction price to performance obligations (606-10-32-28 to 32-41).

Rules:
- Default: relative standalone selling price (606-10-32-31), split by largest remainder
  (`Money.allocate`), so the shares sum exactly to the price; ties go to the earlier
  obligation, in contract-line order.
- A discount allocated to only some obligations (606-10-32-37), when the caller states the
  criteria are met: every other obligation gets its SSP, the named ones share what is left by
  relative SSP. Refused if there is no discount or what is left is negative.
- Residual approach (606-10-32-34(c)) for obligations whose SSP is highly variable or
  uncertain (named by the caller): every other obligation gets its SSP, the residual ones
  share what is left (by their SSP estimates, or equally). Refused when nothing, or less than
  nothing, is left, or when every obligation would be residual.
- Variable consideration whose terms relate to one obligation (or one distinct period of a
  series) and whose allocation meets 606-10-32-40 goes wholly there and stays out of the
  pool; other variable consideration joins the pool.
- A residual approach together with a discount for a subset needs the bundle's own observable
  price (606-10-32-41); it is refused rather than guessed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from finsync.domain.clock import Period
from finsync.domain.money import Money, total
from finsync.systems.revrec.errors import AllocationError


class AllocationMethod(StrEnum):
    RELATIVE_SSP = "relative_ssp"
    DISCOUNT_EXCLUDED = "discount_excluded"
    DISCOUNT_SUBSET = "discount_subset"
    RESIDUAL_OBSERVABLE = "residual_observable"
    RESIDUAL = "residual"


PARAGRAPHS: dict[AllocationMethod, str] = {
    AllocationMethod.RELATIVE_SSP: "606-10-32-31",
    AllocationMethod.DISCOUNT_EXCLUDED: "606-10-32-37",
    AllocationMethod.DISCOUNT_SUBSET: "606-10-32-37",
    AllocationMethod.RESIDUAL_OBSERVABLE: "606-10-32-34(c)",
    AllocationMethod.RESIDUAL: "606-10-32-34(c)",
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
class AllocationInput:
    obligation_id: str
    standalone_selling_price: Money
    residual: bool = False


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
             discount_to: frozenset[str] = frozenset()) -> tuple[AllocatedShare, ...]:
    """Allocate `pool` to the obligations (see the module rules)."""
    if not inputs:
        if not pool.is_zero:
            raise AllocationError(f"{pool} to allocate but no performance obligation")
        return ()
    if pool.quantize() != pool:
        raise AllocationError(f"the transaction price {pool} is not in minor units")
    if any(i.residual for i in inputs):
        if discount_to:
            raise AllocationError("a residual approach with a discount for some obligations "
                                  "needs the bundle's observable price (606-10-32-41)")
        return _residual(pool, inputs)
    if discount_to:
        return _discount_subset(pool, inputs, discount_to)
    return _relative(pool, inputs, AllocationMethod.RELATIVE_SSP)


def _relative(pool: Money, inputs: Sequence[AllocationInput],
              method: AllocationMethod) -> tuple[AllocatedShare, ...]:
    weights = [i.standalone_selling_price.amount for i in inputs]
    if any(w < 0 for w in weights):
        raise AllocationError("a standalone selling price cannot be negative")
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
    if left.amount <= 0:
        raise AllocationError(f"the residual approach leaves {left} for "
                              f"{[i.obligation_id for i in residual]}")
    estimates = [i.standalone_selling_price.amount for i in residual]
    weights = estimates if sum(estimates) > 0 else [1] * len(residual)
    shared = tuple(AllocatedShare(i.obligation_id, i.standalone_selling_price, part,
                                  AllocationMethod.RESIDUAL)
                   for i, part in zip(residual, left.allocate(weights), strict=True))
    return _in_order(inputs, (*fixed, *shared))


def _in_order(inputs: Sequence[AllocationInput],
              shares: Sequence[AllocatedShare]) -> tuple[AllocatedShare, ...]:
    by_id = {s.obligation_id: s for s in shares}
    return tuple(by_id[i.obligation_id] for i in inputs)
