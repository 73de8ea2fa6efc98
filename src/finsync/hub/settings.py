"""What the hub needs to know, as plain values (the composition root reads `finsync.toml`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from finsync.domain.events import BusinessDomain, EventType


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    attempts_max: int = 8
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 300.0
    lease_s: float = 30.0
    batch_size: int = 50
    # A lease that runs out this many times (a worker died or hung on the delivery) makes
    # the delivery dead, with an exception, instead of being taken again.
    lease_expiries_max: int = 3


@dataclass(frozen=True, slots=True)
class HubSettings:
    ownership: Mapping[BusinessDomain, str]
    routes: Mapping[EventType, tuple[str, ...]]
    delivery: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    gap_wait_s: float = 300.0
    intake_batch_size: int = 500
