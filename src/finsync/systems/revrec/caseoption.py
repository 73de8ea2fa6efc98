"""Reading the customer options of a revenue case file (`options`, 606-10-55-41 to 55-45).

Rules:
- Each option has an `id` (its material right's obligation id: no line's id), `method`
  (`standalone_selling_price`, the default, or `practical_alternative`) and a `note`.
- `standalone_selling_price` (606-10-55-44): `expires` (date), `discount`,
  `discount_available_anyway` (default "0"), `stacks` (default false: the two discounts do
  not combine), `expected_purchases` (amount at SSP), `likelihood` (percent of exercise).
- `practical_alternative` (606-10-55-45): `obligation` (the line renewed), `weight` (per
  unit of the current term) and `renewals` [{`from`, `to`, `unit_price`, `renewal_rate`
  (percent of the term before), `weight`}]; it expires when the first renewal starts.
- Percentages are decimal strings from "0" to "100"; amounts in the contract's currency.
"""

from __future__ import annotations

from decimal import Decimal

from finsync.domain.clock import Period
from finsync.systems.revrec.casecontract import CaseContract
from finsync.systems.revrec.casereader import Node, built, opt_items
from finsync.systems.revrec.obligation_id import SEPARATORS
from finsync.systems.revrec.option import CustomerOption, OptionMethod, RenewalTerm

_SSP_FIELDS = ("expires", "discount", "discount_available_anyway", "stacks",
               "expected_purchases", "likelihood")
_ALTERNATIVE_FIELDS = ("obligation", "weight", "renewals")
OPTION_FIELDS = ("id", "method", "note", *_SSP_FIELDS, *_ALTERNATIVE_FIELDS)


def read_option(node: Node, case: CaseContract) -> CustomerOption:
    node.only(*OPTION_FIELDS)
    option_id = node.field("id").text()
    if any(sep in option_id for sep in SEPARATORS):
        raise node.field("id").fail("'+' and '@' are kept for the engine's own obligation ids")
    chosen = node.opt("method")
    method = OptionMethod.STANDALONE_SELLING_PRICE if chosen is None else OptionMethod(
        chosen.choice(m.value for m in OptionMethod))
    if method is OptionMethod.PRACTICAL_ALTERNATIVE:
        node.only("id", "method", "note", *_ALTERNATIVE_FIELDS)
        renewals = tuple(_renewal(item, case) for item in opt_items(node, "renewals"))
        if not renewals:
            raise node.field("renewals").fail("must hold at least one renewal term")
        return CustomerOption(option_id, renewals[0].span.start, method,
                              obligation_id=node.field("obligation").text(),
                              weight=case.money(node.field("weight")), renewals=renewals)
    node.only("id", "method", "note", *_SSP_FIELDS)
    anyway, stacks = node.opt("discount_available_anyway"), node.opt("stacks")
    return CustomerOption(option_id, node.field("expires").day(), method,
                          _percent(node.field("discount")),
                          Decimal(0) if anyway is None else _percent(anyway),
                          False if stacks is None else stacks.flag(),
                          case.money(node.field("expected_purchases")),
                          _percent(node.field("likelihood")))


def _renewal(node: Node, case: CaseContract) -> RenewalTerm:
    node.only("from", "to", "unit_price", "renewal_rate", "weight")
    start, end = node.field("from").day(), node.field("to").day()
    return RenewalTerm(built(node.path, lambda: Period(start, end)),
                       case.money(node.field("unit_price")),
                       _percent(node.field("renewal_rate")), case.money(node.field("weight")))


def _percent(node: Node) -> Decimal:
    percent = node.decimal()
    if not 0 <= percent <= 100:
        raise node.fail("must be between 0 and 100")
    return percent
