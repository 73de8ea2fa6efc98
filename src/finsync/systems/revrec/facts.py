"""Default modification facts, derived from an amendment the way a revenue engine does it
when nobody has judged otherwise (606-10-25-12 and 25-13).

Rules:
- Added goods are distinct (`added_goods_distinct`): a SaaS seat, module or term extension
  is a distinct service in a series (606-10-25-14(b)), sold separately.
- The added goods are priced at their SSP (`priced_at_standalone_selling_price`) when every
  line the amendment adds or increases is priced, per unit, at the SSP of its product in
  force on the effective date, or within that SSP's range (`low`..`high`) when one is given.
  Lines whose price or scope changed otherwise, or that are removed, make it False (the
  modification is then not a pure addition anyway). A product without an SSP on that date
  is not priced at its SSP.
- The additions that are priced at their SSP are named line by line
  (`lines_at_standalone_selling_price`): when the others, or other changes, keep the whole
  from 606-10-25-12, those are still a separate contract and only the rest goes through
  606-10-25-13 (partial 25-12, `modification.split_off`).
- Remaining goods not distinct (`remaining_not_distinct`): the obligations recognised by a
  measure of progress (a single project partially satisfied, 606-10-25-13(b)); every other
  pattern transfers distinct units, days or items.
- The judgement stays the caller's: facts supplied with the amendment replace these.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from finsync.domain.catalog import StandaloneSellingPrice
from finsync.domain.contract import ContractAmendment, SubscriptionContract
from finsync.domain.money import Money
from finsync.systems.revrec.consideration import find_ssp
from finsync.systems.revrec.modification import (
    LineChange,
    LineChangeKind,
    ModificationFacts,
    line_changes,
)
from finsync.systems.revrec.pattern import RecognitionPattern
from finsync.systems.revrec.terms import RecognitionTerms

_ADDITIONS = (LineChangeKind.ADDED, LineChangeKind.INCREASED)


def derive_facts(before: SubscriptionContract, amendment: ContractAmendment,
                 ssps: Sequence[StandaloneSellingPrice],
                 terms: RecognitionTerms) -> ModificationFacts:
    """The default facts of `amendment` to `before` (see the module rules)."""
    on = amendment.effective_date
    changes = line_changes(before, amendment.contract, on, terms.pattern_of)
    moved = [c for c in changes if c.kind is not LineChangeKind.UNCHANGED]
    products = {li.line_id: li.product_id for li in (*before.lines, *amendment.contract.lines)}
    lines_at_ssp = frozenset(c.line_id for c in moved if c.kind in _ADDITIONS
                             and _priced_at_ssp(c, products[c.line_id], ssps, on))
    at_ssp = bool(moved) and all(c.line_id in lines_at_ssp for c in moved)
    progress_lines = frozenset(li.line_id for li in before.lines
                               if terms.pattern_of(li.product_id) is RecognitionPattern.PROGRESS)
    return ModificationFacts(added_goods_distinct=True,
                             priced_at_standalone_selling_price=at_ssp,
                             remaining_not_distinct=progress_lines,
                             lines_at_standalone_selling_price=lines_at_ssp)


def _priced_at_ssp(change: LineChange, product_id: str,
                   ssps: Sequence[StandaloneSellingPrice], on: date) -> bool:
    ssp = find_ssp(ssps, product_id, on)
    if ssp is None:
        return False
    return all(_within(step.unit_price, ssp) for step in change.added_steps)


def _within(price: Money, ssp: StandaloneSellingPrice) -> bool:
    if ssp.low is not None and ssp.high is not None:
        return ssp.low.amount <= price.amount <= ssp.high.amount
    return price.amount == ssp.amount.amount
