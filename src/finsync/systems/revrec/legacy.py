"""Receipts written before contract change ops were typed still answer their requests.

Rules:
- The engine keeps, per idempotency key, a digest of the request it answered. Until change
  ops became `ChangeOp` values (finsync d9a1aea and before), an amendment's changes were
  hashed as `{op, line_id, before, after}` with the op as its source spelled it.
- A request whose current digest differs is still the same request if one of those old
  spellings of it gives the stored digest: without `attribute`, with the op as billing
  spelled it (its value); as Stripe spelled it (`set_<attribute>`, `cancel`,
  `replace_state`); or as a canonical v1 source spelled it (the attribute name itself,
  `add_line`, `remove_line`). Nothing else is accepted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from finsync.domain.contract import ChangeOp

Spelling = Callable[[Mapping[str, Any]], str]

_STRIPE = {ChangeOp.CANCELLED.value: "cancel", ChangeOp.STATE_REPLACED.value: "replace_state"}
_CANONICAL_V1 = {ChangeOp.LINE_ADDED.value: "add_line",
                 ChangeOp.LINE_REMOVED.value: "remove_line"}
_ATTRIBUTE = ChangeOp.ATTRIBUTE_CHANGED.value


def _billing(change: Mapping[str, Any]) -> str:
    return str(change["op"])


def _stripe(change: Mapping[str, Any]) -> str:
    if change["op"] == _ATTRIBUTE:
        return f"set_{change['attribute']}"
    return _STRIPE.get(change["op"], str(change["op"]))


def _canonical_v1(change: Mapping[str, Any]) -> str:
    if change["op"] == _ATTRIBUTE:
        return str(change["attribute"])
    return _CANONICAL_V1.get(change["op"], str(change["op"]))


SPELLINGS: tuple[Spelling, ...] = (_billing, _stripe, _canonical_v1)


def old_bodies(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """An encoded amendment request as each old spelling had it (none for other requests)."""
    amendment = body.get("amendment")
    if not isinstance(amendment, Mapping):
        return []
    return [{**body, "amendment": {**amendment, "changes": [
        {"op": spell(c), "line_id": c["line_id"], "before": c["before"], "after": c["after"]}
        for c in amendment["changes"]]}} for spell in SPELLINGS]
