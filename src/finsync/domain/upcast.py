"""Schema upcasting: old payload versions are upgraded on read, so a year-old event replays.

Rules:
- Each upcaster lifts one event type from version n to n+1 and is pure.
- `upcast` applies them in a chain up to the current version; a version newer than finsync
  knows, or a missing step, is a mapping error (never a guess).

The registered change: `invoice.issued` v1 carried integer minor units (`total_minor`,
`amount_minor`…) beside a currency code; v2 carries decimal strings, as every current payload.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from finsync.domain.envelope import Envelope, JsonObject
from finsync.domain.errors import MappingError
from finsync.domain.money import Money

Upcaster = Callable[[JsonObject], JsonObject]


class UpcasterRegistry:
    def __init__(self) -> None:
        self._steps: dict[tuple[str, int], Upcaster] = {}
        self._current: dict[str, int] = {}

    def register(self, event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        def add(step: Upcaster) -> Upcaster:
            self._steps[(event_type, from_version)] = step
            self._current[event_type] = max(self._current.get(event_type, 1), from_version + 1)
            return step
        return add

    def current_version(self, event_type: str) -> int:
        return self._current.get(event_type, 1)

    def upcast(self, envelope: Envelope) -> Envelope:
        target = self.current_version(envelope.type)
        if envelope.schema_version > target:
            raise MappingError(
                f"{envelope.type} schema v{envelope.schema_version} is newer than v{target}",
                code="unknown_schema_version",
            )
        payload, version = envelope.payload, envelope.schema_version
        while version < target:
            step = self._steps.get((envelope.type, version))
            if step is None:
                raise MappingError(f"no upcaster for {envelope.type} v{version}",
                                   code="unknown_schema_version")
            payload, version = step(payload), version + 1
        return envelope if payload is envelope.payload else envelope.with_payload(version, payload)


UPCASTERS = UpcasterRegistry()


def _minor_to_text(minor: Any, currency: str) -> str:
    if not isinstance(minor, int) or isinstance(minor, bool):
        raise MappingError(f"v1 minor-unit amount must be an integer, got {minor!r}")
    return str(Money.from_minor(minor, currency).amount)


@UPCASTERS.register("invoice.issued", from_version=1)
def _invoice_v1_to_v2(payload: JsonObject) -> JsonObject:
    invoice = dict(payload.get("invoice") or {})
    currency = str(invoice.get("currency", ""))
    for name in ("subtotal", "tax_total", "total"):
        invoice[name] = _minor_to_text(invoice.pop(f"{name}_minor", None), currency)
    lines = []
    for line in invoice.get("lines") or []:
        moved = dict(line)
        moved["amount"] = _minor_to_text(moved.pop("amount_minor", None), currency)
        moved["tax_amount"] = _minor_to_text(moved.pop("tax_amount_minor", 0), currency)
        lines.append(moved)
    invoice["lines"] = lines
    return {**payload, "invoice": invoice}
