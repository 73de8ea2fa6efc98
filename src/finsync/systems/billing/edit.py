"""Amendment edits: what a commercial change does to a contract's lines.

Rules:
- Seats: `AddSeats` / `RemoveSeats` move a seat line's quantity (and every ramp step's) by a
  positive number of seats; a line never goes below zero seats.
- `AddProduct` co-terminates: the new line runs from the effective date to the current term
  end, whatever the product's own frequency; its unit price defaults to the catalogue's.
- `RemoveProduct` ends a line on the effective date (a line not yet started is dropped).
- `ChangePrice` sets a new unit price (not on a ramped line: ramps are priced by their steps).
- `ChangeBillingFrequency` changes the cycle from the next boundary of what is billed.
- Every price, unit price and ramp step is in the contract's currency; a product must be in
  the catalogue; at most one usage line per product (usage is matched by product).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date

from finsync.domain.catalog import BillingFrequency, PriceModel
from finsync.domain.contract import ContractLine, RampStep, SubscriptionContract
from finsync.domain.money import Money
from finsync.systems.billing.catalog import Catalog
from finsync.systems.billing.errors import (
    BillingCurrencyError,
    ContractStateError,
    InvalidCommandError,
    InvalidQuantityError,
    UnknownLineError,
)

_SEAT_MODELS = (PriceModel.PER_UNIT, PriceModel.TIERED, PriceModel.VOLUME)


@dataclass(frozen=True, slots=True)
class AddSeats:
    line_id: str
    seats: int


@dataclass(frozen=True, slots=True)
class RemoveSeats:
    line_id: str
    seats: int


@dataclass(frozen=True, slots=True)
class AddProduct:
    line_id: str
    price_id: str
    quantity: int = 1
    unit_price: Money | None = None
    ramp: tuple[RampStep, ...] = ()


@dataclass(frozen=True, slots=True)
class RemoveProduct:
    line_id: str


@dataclass(frozen=True, slots=True)
class ChangePrice:
    line_id: str
    unit_price: Money


@dataclass(frozen=True, slots=True)
class ChangeBillingFrequency:
    frequency: BillingFrequency


LineEdit = AddSeats | RemoveSeats | AddProduct | RemoveProduct | ChangePrice
Edit = LineEdit | ChangeBillingFrequency


@dataclass(frozen=True, slots=True)
class EditContext:
    effective_date: date
    term_end: date
    currency: str
    catalog: Catalog


def new_frequency(edits: tuple[Edit, ...], current: BillingFrequency) -> BillingFrequency:
    changes = [e.frequency for e in edits if isinstance(e, ChangeBillingFrequency)]
    return changes[-1] if changes else current


def apply_edits(lines: tuple[ContractLine, ...], edits: tuple[Edit, ...], ctx: EditContext,
                *, lenient: bool = False) -> tuple[ContractLine, ...]:
    """The lines after every edit, in order; `lenient` skips edits of lines not present."""
    result = lines
    for edit in edits:
        if isinstance(edit, ChangeBillingFrequency):
            continue
        if isinstance(edit, AddProduct):
            result = (*result, _new_line(edit, ctx, result))
            continue
        index = _index(result, edit.line_id, lenient)
        if index is None:
            continue
        edited = _edit_line(result[index], edit, ctx)
        result = result[:index] + ((edited,) if edited else ()) + result[index + 1:]
    return result


def _index(lines: tuple[ContractLine, ...], line_id: str, lenient: bool) -> int | None:
    for i, line in enumerate(lines):
        if line.line_id == line_id:
            return i
    if lenient:
        return None
    raise UnknownLineError(f"the contract has no line {line_id!r}")


def _edit_line(line: ContractLine, edit: LineEdit, ctx: EditContext) -> ContractLine | None:
    if line.end_date <= ctx.effective_date:
        raise ContractStateError(f"line {line.line_id} ended on {line.end_date}")
    if isinstance(edit, AddSeats | RemoveSeats):
        return _move_seats(line, edit, ctx)
    if isinstance(edit, RemoveProduct):
        if line.start_date >= ctx.effective_date:
            return None
        ramp = tuple(s for s in line.ramp if s.starts_on < ctx.effective_date)
        return replace(line, end_date=ctx.effective_date, ramp=ramp)
    if isinstance(edit, ChangePrice):
        if line.ramp:
            raise InvalidCommandError(f"line {line.line_id} is ramped: change its steps instead")
        _same_currency(edit.unit_price, ctx.currency, line.line_id)
        return replace(line, unit_price=edit.unit_price)
    raise AssertionError(f"unhandled edit {edit!r}")  # AddProduct never reaches here


def _move_seats(line: ContractLine, edit: AddSeats | RemoveSeats,
                ctx: EditContext) -> ContractLine:
    if edit.seats <= 0:
        raise InvalidQuantityError(f"seats to add or remove must be positive, not {edit.seats}")
    if ctx.catalog.plan(line.price_id).price.model not in _SEAT_MODELS:
        raise InvalidCommandError(f"line {line.line_id} is not priced per seat")
    delta = edit.seats if isinstance(edit, AddSeats) else -edit.seats
    quantities = [line.quantity + delta] + [s.quantity + delta for s in line.ramp]
    if min(quantities) < 0:
        raise InvalidQuantityError(f"line {line.line_id} cannot go below zero seats "
                                   f"({line.quantity} {delta:+d})")
    ramp = tuple(replace(s, quantity=s.quantity + delta) for s in line.ramp)
    return replace(line, quantity=line.quantity + delta, ramp=ramp)


def _new_line(edit: AddProduct, ctx: EditContext,
              lines: tuple[ContractLine, ...]) -> ContractLine:
    if any(line.line_id == edit.line_id for line in lines):
        raise InvalidCommandError(f"line {edit.line_id} already exists")
    if edit.quantity < 0:
        raise InvalidQuantityError(f"line {edit.line_id}: quantity {edit.quantity} is negative")
    plan = ctx.catalog.plan(edit.price_id)
    ctx.catalog.product(plan.price.product_id)
    price = edit.unit_price or plan.price.unit_amount
    for money in (plan.price.unit_amount, price, *(s.unit_price for s in edit.ramp)):
        _same_currency(money, ctx.currency, edit.line_id)
    return ContractLine(edit.line_id, plan.price.product_id, plan.id, edit.quantity, price,
                        ctx.effective_date, ctx.term_end, edit.ramp)


def _same_currency(price: Money, currency: str, line_id: str) -> None:
    if price.currency != currency:
        raise BillingCurrencyError(f"line {line_id}: {price.currency} price on a "
                                   f"{currency} contract")


def check_contract(contract: SubscriptionContract, catalog: Catalog) -> None:
    """Every line sells a known product at a known price in the contract's currency."""
    ids = [line.line_id for line in contract.lines]
    if len(set(ids)) != len(ids):
        raise InvalidCommandError(f"contract {contract.id}: line ids must be unique")
    usage_products: list[str] = []
    for line in contract.lines:
        _check_line(contract, line, catalog)
        if catalog.plan(line.price_id).is_usage:
            usage_products.append(line.product_id)
    if len(set(usage_products)) != len(usage_products):
        raise InvalidCommandError(f"contract {contract.id}: one usage line per product")


def _check_line(contract: SubscriptionContract, line: ContractLine, catalog: Catalog) -> None:
    plan = catalog.plan(line.price_id)
    catalog.product(line.product_id)
    if plan.price.product_id != line.product_id:
        raise InvalidCommandError(f"line {line.line_id}: price {plan.id} does not sell "
                                  f"{line.product_id}")
    if plan.one_off:
        raise InvalidCommandError(f"line {line.line_id}: price {plan.id} is one-off; charge "
                                  "it with a one-off charge, not on a contract line")
    for money in (plan.price.unit_amount, line.unit_price, *(s.unit_price for s in line.ramp)):
        _same_currency(money, contract.currency, line.line_id)
    if any(s.quantity < 0 for s in line.ramp):
        raise InvalidQuantityError(f"line {line.line_id}: a ramp step has negative quantity")
    if line.start_date < contract.start_date or line.end_date > contract.end_date:
        raise InvalidCommandError(f"line {line.line_id} runs outside the contract term")
