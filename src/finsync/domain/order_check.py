"""Checks of the commercial layer's orders: billing's resulting contract against the order
the hub sent (the version check), and a renewal against the renewal baseline.

Rules:
- The version check compares line by line, by line id: product, price, quantity, net
  unit price, service start and end, ramp; and the contract's customer, legal entity,
  currency, billing frequency and term end. Each difference names its line (`*` for the
  contract) and field, with what was ordered and what billing holds. Billing's contract
  version number is its own and is not compared.
- A cancellation is checked for being one, and for the day it ends the contract
  (`cancellation_end`): its effective date when the order keeps no line running after
  it (each ended then, or at zero as CPQ quotes a cancellation), else the term's end (a
  cancellation at term end: the lines run to it). Billing's contract must end on that day
  and none of its lines after it; billing may end or drop the lines before it as its rules
  say (an immediate cancellation ends each line on the effective date and drops those not
  started; one at term end keeps them).
- Like for like: billing's contract events state a recurring line's unit price per unit
  per billing period (an annual 120.00 seat billed quarterly is 30.00), the order per the
  price's own period. An order line whose price period is known (`price_months`) is
  restated per billing's billing period, as billing restates it
  (`domain.catalog.per_billing_period`), before it is compared; usage prices are not.
- The renewal baseline is what renews after an applied version: each line that runs to
  the end of the term with a quantity, at the price in effect at the term's end (its last
  ramp step, if any), and the contract's renewal uplift. After a cancellation nothing
  renews.
- A renewal agrees with the baseline when it renews the same lines with the same product
  and quantity, each at baseline price x (1 + uplift / 100): exactly, or once rounded half
  up to the currency's minor units (CPQ rounds its net prices). E.g. 120.00 a seat-year
  with a 7 % uplift renews at 128.40.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from finsync.domain.catalog import per_billing_period
from finsync.domain.commercial import (
    CommercialContract,
    CommercialKind,
    OrderLine,
    SubscriptionOrder,
)
from finsync.domain.contract import (
    CONTRACT_LEVEL,
    ContractLine,
    RampStep,
    SubscriptionContract,
)
from finsync.domain.money import Money

ABSENT = "absent"
_HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class LineDifference:
    line_id: str  # CONTRACT_LEVEL ("*") for the contract's own fields
    field: str
    expected: str  # what the order (or the baseline) says
    found: str  # what billing's contract (or the renewal) says

    def describe(self) -> str:
        where = "contract" if self.line_id == CONTRACT_LEVEL else f"line {self.line_id}"
        return f"{where}: {self.field} {self.expected} != {self.found}"


def version_differences(order: SubscriptionOrder, billed: SubscriptionContract,
                        cancelled: bool) -> tuple[LineDifference, ...]:
    """How billing's contract `billed` differs from `order` (empty: it agrees).
    `cancelled` says whether billing reported a cancellation."""
    ordered_cancel = order.kind is CommercialKind.CANCELLATION
    if ordered_cancel or cancelled:
        if ordered_cancel == cancelled:
            return _cancellation_differences(order, billed)
        return (LineDifference(CONTRACT_LEVEL, "kind", order.kind.value,
                               "cancellation" if cancelled else "not cancelled"),)
    found: list[LineDifference] = []
    for name, expected, actual in (
            ("contract_id", order.contract_id, billed.id),
            ("customer_id", order.customer_id, billed.customer_id),
            ("legal_entity", order.legal_entity, billed.legal_entity),
            ("currency", order.currency, billed.currency),
            ("billing_frequency", order.billing_frequency.value,
             billed.billing_frequency.value),
            ("end_date", order.end_date.isoformat(), billed.end_date.isoformat())):
        if expected != actual:
            found.append(LineDifference(CONTRACT_LEVEL, name, expected, actual))
    held = {line.line_id: line for line in billed.lines}
    months = billed.billing_frequency.months
    for line in (per_period(x, months) for x in order.lines):
        have = held.pop(line.line_id, None)
        if have is None:
            found.append(LineDifference(line.line_id, "line", "present", ABSENT))
            continue
        for name, expected, actual in (
                ("product_id", line.product_id, have.product_id),
                ("price_id", line.price_id, have.price_id),
                ("quantity", str(line.quantity), str(have.quantity)),
                ("unit_price", str(line.unit_price), str(have.unit_price)),
                ("start_date", line.start_date.isoformat(), have.start_date.isoformat()),
                ("end_date", line.end_date.isoformat(), have.end_date.isoformat()),
                ("ramp", _ramp(line.ramp), _ramp(have.ramp))):
            if expected != actual:
                found.append(LineDifference(line.line_id, name, expected, actual))
    found.extend(LineDifference(line_id, "line", ABSENT, "present")
                 for line_id in sorted(held) if _live(held[line_id]))
    return tuple(found)


def cancellation_end(order: SubscriptionOrder) -> date:
    """The day a cancellation order ends the contract: the term's end when a line still
    runs after the effective date with a quantity (cancelled at term end), else the
    effective date (cancelled then)."""
    day = order.effective_date
    running = any(line.end_date > day and line.quantity > 0 for line in order.lines)
    return order.end_date if running else day


def _cancellation_differences(order: SubscriptionOrder,
                              billed: SubscriptionContract) -> tuple[LineDifference, ...]:
    """Billing's cancelled contract against the day the order ends it."""
    ends = cancellation_end(order)
    found: list[LineDifference] = []
    if billed.end_date != ends:
        found.append(LineDifference(CONTRACT_LEVEL, "end_date", ends.isoformat(),
                                    billed.end_date.isoformat()))
    found.extend(LineDifference(line.line_id, "end_date", ends.isoformat(),
                                line.end_date.isoformat())
                 for line in billed.lines if line.end_date > ends)
    return tuple(found)


def per_period(line: OrderLine, billing_months: int) -> OrderLine:
    """`line` with its prices per unit per billing period of `billing_months`, as billing's
    contract events state them (unchanged when its price period is not known)."""
    months = line.price_months
    if months is None:
        return line
    return replace(line, unit_price=per_billing_period(line.unit_price, billing_months,
                                                       months),
                   ramp=tuple(replace(step, unit_price=per_billing_period(
                       step.unit_price, billing_months, months)) for step in line.ramp))


def _live(line: ContractLine) -> bool:
    """A line billing keeps with nothing on it is not a difference."""
    return line.quantity > 0 or any(step.quantity > 0 for step in line.ramp)


def _ramp(steps: tuple[RampStep, ...]) -> str:
    return ", ".join(f"{s.starts_on}: {s.quantity} x {s.unit_price}" for s in steps) or "none"


@dataclass(frozen=True, slots=True)
class BaselineLine:
    line_id: str
    product_code: str
    quantity: int
    net_unit_price: Money


@dataclass(frozen=True, slots=True)
class RenewalBaseline:
    """What renews at `renews_on` (the term's end), and at which uplift."""

    contract_id: str
    cpq_version: int
    quote_id: str
    renews_on: date
    uplift_percent: Decimal
    lines: tuple[BaselineLine, ...]


def baseline_of(contract: CommercialContract) -> RenewalBaseline:
    """The renewal baseline after `contract` is applied."""
    lines = []
    ends = contract.kind is CommercialKind.CANCELLATION  # nothing renews
    for line in () if ends else contract.lines:
        if line.end_date != contract.end_date:
            continue  # ends before the term does: it does not renew
        last = line.ramp[-1] if line.ramp else None
        quantity = line.quantity if last is None else last.quantity
        price = line.net_unit_price if last is None else last.net_unit_price
        if quantity > 0:
            lines.append(BaselineLine(line.line_id, line.product_code, quantity, price))
    return RenewalBaseline(contract.id, contract.version, contract.quote_id,
                           contract.end_date, contract.renewal_uplift_percent, tuple(lines))


def renewal_price(baseline: Money, uplift_percent: Decimal) -> Money:
    """Baseline x (1 + uplift / 100), unrounded."""
    return baseline * (1 + uplift_percent / _HUNDRED)


def renewal_differences(baseline: RenewalBaseline,
                        renewal: CommercialContract) -> tuple[LineDifference, ...]:
    """How a renewal version differs from its baseline (empty: it agrees)."""
    found: list[LineDifference] = []
    renewed = {line.line_id: line for line in renewal.lines if line.quantity > 0}
    for base in baseline.lines:
        line = renewed.pop(base.line_id, None)
        if line is None:
            found.append(LineDifference(base.line_id, "line", "renews", ABSENT))
            continue
        if line.product_code != base.product_code:
            found.append(LineDifference(base.line_id, "product_code", base.product_code,
                                        line.product_code))
        if line.quantity != base.quantity:
            found.append(LineDifference(base.line_id, "quantity", str(base.quantity),
                                        str(line.quantity)))
        expected = renewal_price(base.net_unit_price, baseline.uplift_percent)
        if not _agrees(expected, line.net_unit_price):
            found.append(LineDifference(base.line_id, "net_unit_price",
                                        str(expected.quantize(ROUND_HALF_UP)),
                                        str(line.net_unit_price)))
    found.extend(LineDifference(line_id, "line", ABSENT, "renews")
                 for line_id in sorted(renewed))
    return tuple(found)


def _agrees(expected: Money, actual: Money) -> bool:
    if expected.currency != actual.currency:
        return False
    return expected.amount == actual.amount or expected.quantize(ROUND_HALF_UP) == actual
