"""Recognition terms of a revenue contract: the judgements the caller supplies at booking.

Rules:
- Each product's pattern comes from the terms (default: ratable, the SaaS subscription).
- Granularity is one per contract (default: by day).
- `residual_product_ids`: products whose SSP is highly variable or uncertain (606-10-32-34(c)).
- `discount_line_ids`: the obligations that a discount belongs to when 606-10-32-37 is met.
- `bundles`: obligations (line ids) regularly sold together at one observable price
  (606-10-32-37(b)); the discount of each bundle is allocated to its obligations, before
  any residual approach (606-10-32-38). Measured at inception, on the booked lines.
- `variable_consideration`: estimates already constrained (606-10-32-11).
- `concession_reasons`: credit-memo reasons that are price concessions (they change the
  transaction price); any other reason corrects a billing only.
- `options`: customer options that may give a material right (`option`, `material_right`).
- `progress_rounding`: the step, in percent, a measure of progress is rounded down to before
  revenue is computed (e.g. 0.1); it divides 100, so complete stays reachable. None: exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from finsync.domain.fingerprint import ADDED_LATER
from finsync.systems.revrec.allocation import Bundle, VariableConsideration
from finsync.systems.revrec.errors import RevenueError
from finsync.systems.revrec.option import CustomerOption
from finsync.systems.revrec.pattern import Granularity, RecognitionPattern

CONCESSION_REASONS: frozenset[str] = frozenset(
    {"sla_credit", "service_credit", "price_concession", "goodwill", "volume_discount"})


@dataclass(frozen=True, slots=True)
class RecognitionTerms:
    patterns: tuple[tuple[str, RecognitionPattern], ...] = ()
    granularity: Granularity = Granularity.DAY
    residual_product_ids: frozenset[str] = frozenset()
    discount_line_ids: frozenset[str] = frozenset()
    variable_consideration: tuple[VariableConsideration, ...] = ()
    concession_reasons: frozenset[str] = CONCESSION_REASONS
    options: tuple[CustomerOption, ...] = field(default=(), metadata=ADDED_LATER)
    progress_rounding: Decimal | None = field(default=None, metadata=ADDED_LATER)
    # Added with bundles: a state stored before them decodes with none, and one without
    # bundles encodes as it did (serial leaves a field added later out at its default).
    bundles: tuple[Bundle, ...] = field(default=(), metadata=ADDED_LATER)

    def __post_init__(self) -> None:
        step = self.progress_rounding
        if step is not None and not (0 < step <= 100 and (100 / step) % 1 == 0):
            raise RevenueError(f"progress_rounding must be a step in percent that divides 100 "
                               f"(such as 0.1), not {step}")

    def pattern_of(self, product_id: str) -> RecognitionPattern:
        return dict(self.patterns).get(product_id, RecognitionPattern.RATABLE)
