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
"""

from __future__ import annotations

from dataclasses import dataclass, field

from finsync.domain.fingerprint import ADDED_LATER
from finsync.systems.revrec.allocation import Bundle, VariableConsideration
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
    # Added with bundles: a state stored before them decodes with none, and one without
    # bundles encodes as it did (serial leaves a field added later out at its default).
    bundles: tuple[Bundle, ...] = field(default=(), metadata=ADDED_LATER)

    def pattern_of(self, product_id: str) -> RecognitionPattern:
        return dict(self.patterns).get(product_id, RecognitionPattern.RATABLE)
