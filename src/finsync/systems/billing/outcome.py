"""What one command did: the new state and, in causal order, the events it emitted.

Rules:
- Every command returns an `Outcome`; its events come in causal order (a contract version
  before the invoice that bills it).
- A command that changes nothing (a usage record sent again) emits nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from finsync.systems.billing.event import Emitted
from finsync.systems.billing.state import BillingState


@dataclass(frozen=True, slots=True)
class Outcome:
    state: BillingState
    emitted: tuple[Emitted, ...] = ()

    def then(self, other: Outcome) -> Outcome:
        """`other` ran on this outcome's state: keep its state and both emissions in order."""
        return Outcome(other.state, self.emitted + other.emitted)
