"""Posting rules: documents become balanced journal entries in the functional currency.

Rules:
- invoice → Dr accounts receivable (total) / Cr deferred revenue, or revenue for products
  recognised on invoice (each line) / Cr tax payable (tax); what billing paid of it out of
  the customer's credit balance → Dr customer credits (oldest first) / Cr accounts
  receivable;
- credit memo → Dr the account its reason names (deferred revenue by default; goodwill to
  sales allowances) and tax payable / Cr accounts receivable up to what the invoice still
  owes, Cr customer credits for the rest;
- payment → Dr cash / Cr accounts receivable per application / Cr customer credits for any
  unapplied remainder;
- refund → Dr customer credits up to the customer's credit balance, Dr accounts receivable
  for the rest / Cr cash;
- a revenue journal posts as given (Dr deferred revenue / Cr revenue, contract asset …).

Currency: a document in another currency is booked at the rate of its posting date. Each
side converts its total once and splits it over its lines by largest remainder, so the
entry balances exactly. Settling an item booked at an older rate relieves it at that
rate; the difference is realised FX gain or loss.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from finsync.domain.journal import JournalLine, Side
from finsync.domain.money import Money, total
from finsync.systems.ledger.chart import Chart, Role

Dimensions = tuple[tuple[str, str], ...]
Converter = Callable[[Money], Money]


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

    def credit_memo_account(self, chart: Chart, reason: str) -> str:
        return chart.code_for(self.credit_reason_roles.get(reason, Role.DEFERRED_REVENUE))


def _side_functional(legs: Sequence[Leg], functional: str,
                     convert: Converter) -> list[Money]:
    """Booked values of one side: fixed legs keep theirs; the others share one conversion."""
    free = [i for i, leg in enumerate(legs) if leg.functional is None]
    fixed = {i: leg.functional for i, leg in enumerate(legs) if leg.functional is not None}
    if not free:
        return [fixed[i] for i in range(len(legs))]
    in_functional = all(legs[i].amount.currency == functional for i in free)
    minors = [legs[i].amount.to_minor() for i in free] if in_functional else []
    if minors and all(m >= 0 for m in minors):
        # Already in the functional currency: converting the total and splitting it back
        # by the legs' own amounts gives each leg its amount, so skip the arithmetic.
        parts = [Money.from_minor(minor, functional) for minor in minors]
    else:
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
    debits = [d for d in debits if not d.amount.is_zero]
    credits = [c for c in credits if not c.amount.is_zero]
    debit_values = _side_functional(debits, functional, convert)
    credit_values = _side_functional(credits, functional, convert)
    lines = [_line(leg, Side.DEBIT, value, functional)
             for leg, value in zip(debits, debit_values, strict=True)]
    lines += [_line(leg, Side.CREDIT, value, functional)
              for leg, value in zip(credits, credit_values, strict=True)]
    difference = total(debit_values, functional) - total(credit_values, functional)
    if not difference.is_zero:
        side = Side.CREDIT if difference.amount > 0 else Side.DEBIT
        amount = difference if difference.amount > 0 else -difference
        lines.append(JournalLine(fx_account, side, amount, ()))
    return tuple(line for line in lines if line is not None)


def _line(leg: Leg, side: Side, value: Money, functional: str) -> JournalLine | None:
    if value.is_zero:
        return None  # a tiny foreign amount can convert to nothing
    foreign = leg.amount if leg.amount.currency != functional else None
    return JournalLine(leg.account, side, value, leg.dimensions, foreign)
