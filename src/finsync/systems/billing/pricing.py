"""Price plans and rating: what a quantity costs for one period of the price.

Rules:
- A plan wraps a catalogue `Price`; amounts are per `price.frequency` (a 120.00 annual seat
  billed quarterly costs 30.00 a quarter). Rating returns exact `Decimal`s: rounding happens
  once per document line, later, never here.
- flat: the line's unit price, whatever the quantity. per_unit: quantity x unit price.
- tiered (graduated, as Stripe): each unit is priced by the tier it falls in, plus each
  reached tier's flat amount. volume: every unit is priced by the tier the total falls in,
  plus that tier's flat amount. Tier bounds `up_to` are inclusive; the last tier is open.
- usage: billed in arrears on the quantity used in the period; `included_quantity` units are
  free each period (never prorated); the overage is priced per unit, or through the tiers
  when the plan has them (graduated).
- A recurring plan is billed in advance unless its timing says in arrears; usage is always
  in arrears. A one-off plan (`one_off`) is charged once, by a one-off charge.
- A price is tax-exclusive unless it says `inclusive`; only one-off prices may (a
  subscription price that included tax would move its net, the revenue contract's price,
  with every change of rate): `TaxInclusivePriceError` otherwise.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from finsync.domain.catalog import Price, PriceModel
from finsync.domain.money import Money
from finsync.systems.billing.errors import (
    CatalogError,
    InvalidQuantityError,
    TaxInclusivePriceError,
)


class Timing(StrEnum):
    IN_ADVANCE = "in_advance"
    IN_ARREARS = "in_arrears"
    ONE_OFF = "one_off"  # charged once, when a one-off charge names it; never a contract line


class TaxBehavior(StrEnum):
    EXCLUSIVE = "exclusive"  # tax is added to the price
    INCLUSIVE = "inclusive"  # the price is what the customer pays, tax included


@dataclass(frozen=True, slots=True)
class Tier:
    up_to: int | None
    unit_amount: Money
    flat_amount: Money | None = None


@dataclass(frozen=True, slots=True)
class PricePlan:
    price: Price
    tiers: tuple[Tier, ...] = ()
    timing: Timing = Timing.IN_ADVANCE
    tax_behavior: TaxBehavior = TaxBehavior.EXCLUSIVE

    def __post_init__(self) -> None:
        model = self.price.model
        if self.timing is Timing.ONE_OFF and model is PriceModel.USAGE:
            raise CatalogError(f"price {self.price.id}: a usage price cannot be one-off")
        if self.tax_inclusive and self.timing is not Timing.ONE_OFF:
            raise TaxInclusivePriceError(
                f"price {self.price.id}: tax-inclusive prices are taken on one-off prices "
                "only; a subscription price's net (the revenue contract's price) would move "
                "with the tax rate")
        if model in (PriceModel.TIERED, PriceModel.VOLUME) and not self.tiers:
            raise CatalogError(f"price {self.price.id}: a {model} price needs tiers")
        if model is PriceModel.USAGE and self.timing is Timing.IN_ADVANCE:
            object.__setattr__(self, "timing", Timing.IN_ARREARS)
        _check_tiers(self.price.id, self.price.unit_amount.currency, self.tiers)

    @property
    def id(self) -> str:
        return self.price.id

    @property
    def tax_inclusive(self) -> bool:
        return self.tax_behavior is TaxBehavior.INCLUSIVE

    @property
    def one_off(self) -> bool:
        return self.timing is Timing.ONE_OFF

    @property
    def in_arrears(self) -> bool:
        return self.timing is Timing.IN_ARREARS

    @property
    def is_usage(self) -> bool:
        return self.price.model is PriceModel.USAGE


def _check_tiers(price_id: str, currency: str, tiers: tuple[Tier, ...]) -> None:
    if not tiers:
        return
    bounds = [t.up_to for t in tiers[:-1] if t.up_to is not None]
    if tiers[-1].up_to is not None or len(bounds) != len(tiers) - 1:
        raise CatalogError(f"price {price_id}: only the last tier is open-ended")
    if any(b <= 0 for b in bounds) or any(a >= b for a, b in itertools.pairwise(bounds)):
        raise CatalogError(f"price {price_id}: tier bounds must be positive and rising")
    for tier in tiers:
        amounts = [tier.unit_amount] + ([tier.flat_amount] if tier.flat_amount else [])
        if any(m.currency != currency for m in amounts):
            raise CatalogError(f"price {price_id}: tiers must be in {currency}")


def graduated(tiers: tuple[Tier, ...], quantity: int) -> Decimal:
    """Each unit at the price of the tier it falls in; a reached tier adds its flat amount."""
    amount, floor = Decimal(0), 0
    for tier in tiers:
        if quantity <= floor:
            break
        ceiling = quantity if tier.up_to is None else min(quantity, tier.up_to)
        amount += tier.unit_amount.amount * (ceiling - floor)
        amount += tier.flat_amount.amount if tier.flat_amount else Decimal(0)
        floor = ceiling
    return amount


def volume(tiers: tuple[Tier, ...], quantity: int) -> Decimal:
    """Every unit at the price of the tier the whole quantity falls in; zero units cost zero."""
    if quantity == 0:
        return Decimal(0)
    tier = next(t for t in tiers if t.up_to is None or quantity <= t.up_to)
    flat = tier.flat_amount.amount if tier.flat_amount else Decimal(0)
    return tier.unit_amount.amount * quantity + flat


def recurring_rate(plan: PricePlan, quantity: int, unit_price: Money) -> Decimal:
    """What one full period of the price costs at this quantity (exact, unrounded)."""
    if quantity < 0:
        raise InvalidQuantityError(f"price {plan.id}: quantity {quantity} is negative")
    model = plan.price.model
    if model is PriceModel.FLAT:
        return unit_price.amount
    if model is PriceModel.PER_UNIT:
        return unit_price.amount * quantity
    if model is PriceModel.TIERED:
        return graduated(plan.tiers, quantity)
    if model is PriceModel.VOLUME:
        return volume(plan.tiers, quantity)
    return Decimal(0)  # usage has no recurring part


def usage_rate(plan: PricePlan, used: int, unit_price: Money) -> tuple[int, Decimal]:
    """The billable quantity beyond the included one, and what it costs (exact)."""
    if used < 0:
        raise InvalidQuantityError(f"price {plan.id}: usage {used} is negative")
    billable = max(0, used - plan.price.included_quantity)
    if plan.tiers:
        return billable, graduated(plan.tiers, billable)
    return billable, unit_price.amount * billable
