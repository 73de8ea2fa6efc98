"""Contract modifications: what changed, and how to account for it (606-10-25-10 to 25-13).

Rules (the decision table, walked top to bottom; the first row that matches decides):
1. No line changed in scope or price: not a modification (606-10-25-10).
2. Only distinct goods are added (new lines, more units, a longer term at unchanged prices)
   and their price reflects their SSP: a separate contract (606-10-25-12).
2p. Partial 25-12: some additions are distinct and priced at their SSP (the lines the facts
   name in `lines_at_standalone_selling_price`), and something else changes too (a price
   cut, goods added below SSP). The named additions are a separate contract (606-10-25-12);
   the other changes alone go down rows 3 to 5. Two decisions are kept, one per part, in
   that order (`split_off`).
3. Every remaining good is distinct from those transferred on or before the modification:
   termination of the old contract and creation of a new one, prospective (606-10-25-13(a)).
4. No remaining good is distinct (a single, partially satisfied obligation): part of the
   existing contract, cumulative catch-up on the modification date (606-10-25-13(b)).
5. Some of each: a mix (606-10-25-13(c)); the obligations named as not distinct are caught
   up, the others are treated prospectively.
The facts (distinct, priced at SSP, which additions are at SSP, which remaining goods are not
distinct) are judgements the caller supplies; the engine decides from them and reports the
reason and paragraph.

A line change is `added`, `removed`, `increased` (only more units or a longer term at unchanged
prices), `changed` (anything else) or `unchanged`; its delta is the change in consideration
from the effective date on (ratable lines) or in total (lines priced once), rounded where
billing rounds it (`consideration.change_value`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from finsync.domain.contract import ContractLine, SubscriptionContract
from finsync.domain.fingerprint import ADDED_LATER
from finsync.domain.money import Money
from finsync.systems.revrec.consideration import (
    PriceBook,
    Step,
    change_value,
    difference,
    line_steps,
    steps_from,
)
from finsync.systems.revrec.pattern import RecognitionPattern


class ModificationTreatment(StrEnum):
    NOT_A_MODIFICATION = "not_a_modification"
    SEPARATE_CONTRACT = "separate_contract"
    TERMINATION_AND_NEW_CONTRACT = "termination_and_new_contract"
    CUMULATIVE_CATCH_UP = "cumulative_catch_up"
    MIXED = "mixed"


PARAGRAPHS: dict[ModificationTreatment, str] = {
    ModificationTreatment.NOT_A_MODIFICATION: "606-10-25-10",
    ModificationTreatment.SEPARATE_CONTRACT: "606-10-25-12",
    ModificationTreatment.TERMINATION_AND_NEW_CONTRACT: "606-10-25-13(a)",
    ModificationTreatment.CUMULATIVE_CATCH_UP: "606-10-25-13(b)",
    ModificationTreatment.MIXED: "606-10-25-13(c)",
}


class LineChangeKind(StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    INCREASED = "increased"
    CHANGED = "changed"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class ModificationFacts:
    """The judgements behind a modification (606-10-25-12 and 25-13).

    `priced_at_standalone_selling_price` judges every addition at once;
    `lines_at_standalone_selling_price` names the added or increased lines whose added goods
    are priced at their SSP when not all are (or when something else changes too): they are
    split off as a separate contract (row 2p of the decision table)."""

    added_goods_distinct: bool = True
    priced_at_standalone_selling_price: bool = False
    remaining_not_distinct: frozenset[str] = frozenset()
    lines_at_standalone_selling_price: frozenset[str] = field(default=frozenset(),
                                                              metadata=ADDED_LATER)


@dataclass(frozen=True, slots=True)
class LineChange:
    line_id: str
    kind: LineChangeKind
    delta: Money
    added_steps: tuple[Step, ...] = ()


# The amendment id of a decision an approved unpriced change order records
# (`change_order`): it changes no contract version, so it places no later version.
CHANGE_ORDER_PREFIX = "co_"


@dataclass(frozen=True, slots=True)
class ModificationDecision:
    event_id: str
    amendment_id: str
    contract_version: int
    effective_date: date
    treatment: ModificationTreatment
    reason: str
    changes: tuple[LineChange, ...] = ()
    catch_up: tuple[tuple[str, Money], ...] = ()

    @property
    def paragraph(self) -> str:
        return PARAGRAPHS[self.treatment]


PatternOf = Callable[[str], RecognitionPattern]


def line_changes(old: SubscriptionContract, new: SubscriptionContract, on: date,
                 pattern_of: PatternOf) -> tuple[LineChange, ...]:
    """Per line, what the modification changes from `on` (see the module rules)."""
    book = PriceBook.of(new)
    before = {line.line_id: line for line in old.lines}
    after = {line.line_id: line for line in new.lines}
    ids = [*before, *(i for i in after if i not in before)]
    return tuple(_line_change(before.get(i), after.get(i), on, book, pattern_of) for i in ids)


def _line_change(old: ContractLine | None, new: ContractLine | None, on: date,
                 book: PriceBook, pattern_of: PatternOf) -> LineChange:
    line = new or old
    assert line is not None  # one of the two always exists
    pattern = pattern_of(line.product_id)
    old_steps = _remaining(old, on, pattern)
    new_steps = _remaining(new, on, pattern)
    delta = change_value(pattern, new_steps, old_steps, book, on)
    if old is None:
        return LineChange(line.line_id, LineChangeKind.ADDED, delta, new_steps)
    if new is None and not old_steps:
        return LineChange(line.line_id, LineChangeKind.UNCHANGED, delta)
    if new is None:
        return LineChange(line.line_id, LineChangeKind.REMOVED, delta)
    if old == new:
        return LineChange(line.line_id, LineChangeKind.UNCHANGED, delta)
    added = difference(new_steps, old_steps)
    if added and old.start_date == new.start_date:
        return LineChange(line.line_id, LineChangeKind.INCREASED, delta, added)
    return LineChange(line.line_id, LineChangeKind.CHANGED, delta)


def _remaining(line: ContractLine | None, on: date,
               pattern: RecognitionPattern) -> tuple[Step, ...]:
    if line is None:
        return ()
    steps = line_steps(line)
    return steps_from(steps, on) if pattern.priced_per_period else steps


ADDITIONS = (LineChangeKind.ADDED, LineChangeKind.INCREASED)


def split_off(changes: Sequence[LineChange], facts: ModificationFacts
              ) -> tuple[tuple[LineChange, ...], tuple[LineChange, ...]]:
    """Row 2p: (the additions accounted for as a separate contract, the other changes), or
    ((), changes) when the modification is not split: nothing named at SSP, the additions
    not distinct, or nothing else changes (then row 2 takes it whole)."""
    if not facts.added_goods_distinct or facts.priced_at_standalone_selling_price:
        return (), tuple(changes)
    named = facts.lines_at_standalone_selling_price
    separate = tuple(c for c in changes
                     if c.kind in ADDITIONS and c.added_steps and c.line_id in named)
    rest = tuple(c for c in changes if c not in separate)
    if not separate or all(c.kind is LineChangeKind.UNCHANGED for c in rest):
        return (), tuple(changes)
    return separate, rest


def split_reason(obligation_ids: Sequence[str]) -> str:
    return (f"{', '.join(obligation_ids)}: distinct goods added at their standalone selling "
            "prices, a separate contract; the amendment's other changes are accounted for "
            "under 606-10-25-13")


def _all_at_ssp(moved: Sequence[LineChange], facts: ModificationFacts) -> bool:
    if facts.priced_at_standalone_selling_price:
        return True
    return all(c.line_id in facts.lines_at_standalone_selling_price for c in moved)


def decide(changes: Sequence[LineChange], facts: ModificationFacts,
           remaining: Sequence[str]) -> tuple[ModificationTreatment, str]:
    """The treatment and its reason, from the line changes, the facts and the obligations
    still to be satisfied (the decision table in the module docstring; row 2p is
    `split_off`, whose other changes come here)."""
    moved = [c for c in changes if c.kind is not LineChangeKind.UNCHANGED]
    if not moved:
        return ModificationTreatment.NOT_A_MODIFICATION, "no change in scope or price"
    only_added = all(c.kind in ADDITIONS for c in moved)
    if only_added and facts.added_goods_distinct and _all_at_ssp(moved, facts):
        return (ModificationTreatment.SEPARATE_CONTRACT,
                "only distinct goods are added, priced at their standalone selling prices")
    why_not = ("goods other than distinct additions change" if not only_added else
               "added goods are not distinct" if not facts.added_goods_distinct else
               "added goods are not priced at their standalone selling prices")
    not_distinct = facts.remaining_not_distinct & set(remaining)
    if not not_distinct:
        return (ModificationTreatment.TERMINATION_AND_NEW_CONTRACT,
                f"{why_not}; remaining goods are distinct from those transferred")
    if not_distinct == set(remaining):
        return (ModificationTreatment.CUMULATIVE_CATCH_UP,
                f"{why_not}; remaining goods are not distinct (partially satisfied "
                f"obligation {', '.join(sorted(not_distinct))})")
    return (ModificationTreatment.MIXED,
            f"{why_not}; {', '.join(sorted(not_distinct))} not distinct (catch-up), "
            "the other remaining goods distinct (prospective)")
