"""Posting rules: documents become balanced journal entries in the functional currency.

Rules:
- invoice → Dr accounts receivable (total) / Cr deferred revenue, or revenue for products
  recognised on invoice (each line) / Cr tax payable, one leg per jurisdiction of the
  lines' tax breakdowns (dimension `jurisdiction`; tax without a breakdown is one leg
  without one); a negative total (the invoice credits more than it bills) is credited to
  the customer (Cr customer credits); what billing paid of it out of the customer's credit
  balance → Dr customer credits (oldest first) / Cr accounts receivable;
- credit memo → Dr the account its reason names (goodwill: sales allowances; uncollectible,
  a write-off: bad debt), else the account the invoice credited for the line's product
  (deferred revenue, or revenue for a product recognised on invoice; a void reverses the
  invoice), and tax payable per jurisdiction as the invoice / Cr accounts receivable up to
  what the invoice still owes, Cr customer credits for the rest;
- payment → Dr cash / Cr accounts receivable per application / Cr customer credits for any
  unapplied remainder;
- refund → Dr customer credits up to the customer's credit balance, Dr accounts receivable
  for the rest / Cr cash;
- a revenue journal posts as given (Dr deferred revenue / Cr revenue, contract asset …).

A leg with a negative amount is posted on the other side: a credit line of -150 inside an
invoice (the unused time of a mid-period decrease) is a debit of 150 to the same account.
Each side then holds positive legs only.

Currency: a document in another currency is booked at the rate of its posting date. Each
side converts its total once and splits it over its lines by largest remainder, so the
entry balances exactly. Settling an item booked at an older rate relieves it at that
rate; the difference is realised FX gain or loss.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from finsync.domain.invoice import WRITE_OFF
from finsync.domain.journal import JournalLine, Side
from finsync.domain.money import Money, quantum, total
from finsync.systems.ledger.chart import Chart, Role

Dimensions = tuple[tuple[str, str], ...]
JURISDICTION = "jurisdiction"  # the dimension of a tax payable line: "DE", "US-NY"
Converter = Callable[[Money], Money]

# Credit reasons whose account every entity shares, whatever its stored map says (maps are
# stored when an entity is set up; these came later). A write-off is not a credit to the
# customer: the receivable is an expense (bad debt), and the tax billed stays owed.
BUILT_IN_REASON_ROLES: Mapping[str, Role] = {WRITE_OFF: Role.BAD_DEBT}


@dataclass(frozen=True, slots=True)
class Leg:
    """One side of an entry in the document's currency; `functional` fixes its booked value
    (an item relieved at its historical rate)."""

    account: str
    amount: Money
    dimensions: Dimensions = ()
    functional: Money | None = None


@dataclass(frozen=True, slots=True)
class AccountMap:
    """Where an entity books revenue, per product; which products are recognised on invoice;
    which account each credit-memo reason debits."""

    revenue_by_product: Mapping[str, str] = field(default_factory=dict)
    recognised_on_invoice: frozenset[str] = frozenset()
    credit_reason_roles: Mapping[str, Role] = field(default_factory=lambda: {
        "goodwill": Role.SALES_ALLOWANCES})

    def invoice_credit_account(self, chart: Chart, product_id: str) -> str:
        if product_id in self.recognised_on_invoice:
            return self.revenue_by_product.get(product_id, chart.code_for(Role.REVENUE))
        return chart.code_for(Role.DEFERRED_REVENUE)

    def credit_memo_account(self, chart: Chart, reason: str, product_id: str) -> str:
        role = self.credit_reason_roles.get(reason) or BUILT_IN_REASON_ROLES.get(reason)
        if role is None:  # a correction reverses what the invoice credited
            return self.invoice_credit_account(chart, product_id)
        return chart.code_for(role)


def _side_functional(legs: Sequence[Leg], functional: str,
                     convert: Converter) -> list[Money]:
    """Booked values of one side: fixed legs keep theirs; the others share one conversion."""
    values = []
    for leg in legs:
        if leg.functional is not None:
            values.append(leg.functional)
        elif leg.amount.currency == functional:
            # Nothing to convert (the common case): converting the free legs' total and
            # splitting it back by their own amounts gives each its amount, in minor units.
            values.append(_in_minor_units(leg.amount))
        else:
            return _converted(legs, functional, convert)
    return values


def _converted(legs: Sequence[Leg], functional: str, convert: Converter) -> list[Money]:
    """`_side_functional` of a side with a leg to convert."""
    free = [i for i, leg in enumerate(legs) if leg.functional is None]
    fixed = {i: leg.functional for i, leg in enumerate(legs) if leg.functional is not None}
    free_total = total([legs[i].amount for i in free], legs[free[0]].amount.currency)
    if free_total.is_zero:
        parts = [Money.zero(functional)] * len(free)
    else:
        weights = [legs[i].amount.to_minor() for i in free]
        parts = list(convert(free_total).allocate(weights))
    fixed.update(zip(free, parts, strict=True))
    return [fixed[i] for i in range(len(legs))]


def balanced_lines(debits: Sequence[Leg], credits: Sequence[Leg], functional: str,
                   convert: Converter, fx_account: str) -> tuple[JournalLine, ...]:
    """Journal lines in the functional currency; any settlement difference goes to FX."""
    debit_legs = [*_positive(debits), *_reversed(credits)]
    credit_legs = [*_positive(credits), *_reversed(debits)]
    debit_values = _side_functional(debit_legs, functional, convert)
    credit_values = _side_functional(credit_legs, functional, convert)
    lines = [_line(leg, Side.DEBIT, value, functional)
             for leg, value in zip(debit_legs, debit_values, strict=True)]
    lines += [_line(leg, Side.CREDIT, value, functional)
              for leg, value in zip(credit_legs, credit_values, strict=True)]
    difference = total(debit_values, functional).amount \
        - total(credit_values, functional).amount
    if difference != 0:
        side = Side.CREDIT if difference > 0 else Side.DEBIT
        amount = difference if difference > 0 else -difference
        lines.append(JournalLine(fx_account, side, Money(amount, functional), ()))
    return tuple(line for line in lines if line is not None)


def _in_minor_units(money: Money) -> Money:
    """`Money.from_minor(money.to_minor(), money.currency)`: the amount written at its
    minor unit ("100" → "100.00"), more precision refused; one rounding, not two scalings."""
    if money.amount.same_quantum(quantum(money.currency)):
        return money  # written at its minor unit already (the common case)
    exact = money.quantize()
    if exact.amount != money.amount:
        money.to_minor()  # raises: more precision than the currency's minor units
    return exact


def _positive(legs: Sequence[Leg]) -> list[Leg]:
    return [leg for leg in legs if leg.amount.amount > 0]


def _reversed(legs: Sequence[Leg]) -> list[Leg]:
    """The negative legs of one side, as positive legs of the other."""
    return [Leg(leg.account, -leg.amount, leg.dimensions,
                None if leg.functional is None else -leg.functional)
            for leg in legs if leg.amount.amount < 0]


def _line(leg: Leg, side: Side, value: Money, functional: str) -> JournalLine | None:
    if value.is_zero:
        return None  # a tiny foreign amount can convert to nothing
    foreign = leg.amount if leg.amount.currency != functional else None
    return JournalLine(leg.account, side, value, leg.dimensions, foreign)
