"""Which actions need a second person.

A correction changes what reaches the books or takes an item off the queue without the
system fixing it: re-route, resolve, ignore, and choosing which body of a `duplicate_event`
stands (`choose_body`: keeping the stored one closes the item, keeping the received
one replaces what the books get). Above the configured amount (per currency) it
needs approval by someone other than who asked (segregation of duties). Retry and replay
only redo what was asked before, so they never wait for approval.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum

from finsync.domain.money import Money


class Action(StrEnum):
    """Values are stored in `triage_actions.action` (16 characters at most)."""

    RETRY = "retry"
    REPLAY = "replay"
    REROUTE = "reroute"
    RESOLVE = "resolve"
    IGNORE = "ignore"
    CHOOSE_BODY = "choose_body"  # which body of a duplicate_event stands


CORRECTIONS = frozenset({Action.REROUTE, Action.RESOLVE, Action.IGNORE,
                         Action.CHOOSE_BODY})


@dataclass(frozen=True, slots=True)
class ApprovalPolicy:
    default_threshold: Decimal = Decimal("1000.00")
    thresholds: Mapping[str, Decimal] = field(default_factory=dict)
    pending_ttl: timedelta = timedelta(hours=72)  # then the request expires, undecided

    def threshold(self, currency: str) -> Decimal:
        return self.thresholds.get(currency, self.default_threshold)

    def needs_approval(self, action: Action, at_stake: Money | None) -> bool:
        """A correction above the threshold. An exception with no money at stake (a payload
        that is not JSON, a gap in versions) moves nothing in the books."""
        if action not in CORRECTIONS or at_stake is None:
            return False
        return abs(at_stake.amount) > self.threshold(at_stake.currency)
