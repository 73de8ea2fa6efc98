"""Schema upcasters: pure steps that lift an old payload shape one version, so a year-old
event replays today.

Rules:
- A step takes the payload (a JSON object) of version n and returns version n+1; it never
  guesses: a value it cannot lift is a `MappingError`.
- Each event class lists its steps in order (`CanonicalEvent.upcasters`); the codec applies
  them on read, up to the class's current version.

The changes registered:
- invoice issued, v1 -> v2: integer minor units (`total_minor`, `amount_minor`…) beside a
  currency code became decimal strings, as every current payload.
- contract amended / renewed / cancelled, v1 -> v2: a change's `op` became one of the
  `ChangeOp` values. `cancel` is `cancelled`, `replace_state` is `state_replaced`,
  `add_line` and `remove_line` are `line_added` and `line_removed`. Any other v1 op that is
  not a `ChangeOp` named what changed in free form (Stripe's `set_<attribute>`, a CPQ's
  `quantity`): it is `attribute_changed` with that name as `attribute` (without `set_`),
  so nothing a source said is lost. A contract-level change's empty `line_id` is `*`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from finsync.domain.contract import CONTRACT_LEVEL, ChangeOp
from finsync.domain.errors import MappingError
from finsync.domain.money import Money

Payload = Mapping[str, Any]
Upcaster = Callable[[Payload], Payload]


def _minor_to_text(minor: Any, currency: str) -> str:
    if not isinstance(minor, int) or isinstance(minor, bool):
        raise MappingError(f"v1 minor-unit amount must be an integer, got {minor!r}")
    return str(Money.from_minor(minor, currency).amount)


def invoice_v1_to_v2(payload: Payload) -> Payload:
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


_RENAMED_OPS = {"cancel": "cancelled", "replace_state": "state_replaced",
                "add_line": "line_added", "remove_line": "line_removed"}


def _change_v2(change: Any) -> Any:
    if not isinstance(change, Mapping):
        return change  # the reader names the malformed item
    moved = dict(change)
    op = moved.get("op")
    if isinstance(op, str):
        op = _RENAMED_OPS.get(op, op)
        known = op in set(ChangeOp) and not op.startswith("set_")
        moved["op"] = op if known else ChangeOp.ATTRIBUTE_CHANGED.value
        if not known:
            moved["attribute"] = op.removeprefix("set_")
    moved["line_id"] = moved.get("line_id") or CONTRACT_LEVEL
    return moved


def amendment_v1_to_v2(payload: Payload) -> Payload:
    amendment = payload.get("amendment")
    if not isinstance(amendment, Mapping) or not isinstance(amendment.get("changes"), list):
        return payload  # nothing to lift; the reader names what is missing
    changes = [_change_v2(c) for c in amendment["changes"]]
    return {**payload, "amendment": {**amendment, "changes": changes}}
