"""The machine-readable difference between two contract versions.

Rules:
- Each difference is one `ContractChange(op, line_id, before, after)` with a `ChangeOp`;
  values are strings (dates ISO, money as "amount CUR"), and contract-level ops (billing
  frequency, term) have `line_id == CONTRACT_LEVEL`.
- Ops: line_added, line_removed, quantity_changed, unit_price_changed, service_start_changed,
  service_end_changed, ramp_changed, price_changed, billing_frequency_changed, term_changed.
- A change that only moves the renewal baseline (a downgrade deferred to renewal) carries the
  same op at renewal (`ChangeOp.at_renewal`: `renewal_*`), so a reader can tell today's
  contract from next term's; the amendment makes those.
- Ops come out in a stable order: contract-level first, then lines by id.
"""

from __future__ import annotations

from collections.abc import Callable

from finsync.domain.contract import (
    CONTRACT_LEVEL,
    ChangeOp,
    ContractChange,
    ContractLine,
    SubscriptionContract,
)

_LINE_FIELDS: tuple[tuple[ChangeOp, Callable[[ContractLine], str]], ...] = (
    (ChangeOp.PRICE_CHANGED, lambda line: line.price_id),
    (ChangeOp.QUANTITY_CHANGED, lambda line: str(line.quantity)),
    (ChangeOp.UNIT_PRICE_CHANGED, lambda line: str(line.unit_price)),
    (ChangeOp.SERVICE_START_CHANGED, lambda line: line.start_date.isoformat()),
    (ChangeOp.SERVICE_END_CHANGED, lambda line: line.end_date.isoformat()),
    (ChangeOp.RAMP_CHANGED, lambda line: _ramp(line)),
)


def describe(line: ContractLine) -> str:
    return (f"{line.product_id}/{line.price_id} x{line.quantity} @ {line.unit_price} "
            f"[{line.start_date.isoformat()}, {line.end_date.isoformat()})")


def _ramp(line: ContractLine) -> str:
    return ";".join(f"{s.starts_on.isoformat()} x{s.quantity} @ {s.unit_price}"
                    for s in sorted(line.ramp, key=lambda s: s.starts_on))


def contract_diff(before: SubscriptionContract,
                  after: SubscriptionContract) -> tuple[ContractChange, ...]:
    changes: list[ContractChange] = []
    if before.billing_frequency != after.billing_frequency:
        changes.append(ContractChange(ChangeOp.BILLING_FREQUENCY_CHANGED, CONTRACT_LEVEL,
                                      before.billing_frequency.value,
                                      after.billing_frequency.value))
    if (before.start_date, before.end_date) != (after.start_date, after.end_date):
        changes.append(ContractChange(ChangeOp.TERM_CHANGED, CONTRACT_LEVEL, _term(before),
                                      _term(after)))
    return tuple(changes) + lines_diff(before.lines, after.lines)


def _term(contract: SubscriptionContract) -> str:
    return f"[{contract.start_date.isoformat()}, {contract.end_date.isoformat()})"


def lines_diff(before: tuple[ContractLine, ...],
               after: tuple[ContractLine, ...]) -> tuple[ContractChange, ...]:
    old = {line.line_id: line for line in before}
    new = {line.line_id: line for line in after}
    changes: list[ContractChange] = []
    for line_id in sorted(old.keys() | new.keys()):
        if line_id not in new:
            changes.append(ContractChange(ChangeOp.LINE_REMOVED, line_id,
                                          describe(old[line_id]), None))
        elif line_id not in old:
            changes.append(ContractChange(ChangeOp.LINE_ADDED, line_id, None,
                                          describe(new[line_id])))
        else:
            changes.extend(_line_changes(old[line_id], new[line_id]))
    return tuple(changes)


def _line_changes(before: ContractLine, after: ContractLine) -> tuple[ContractChange, ...]:
    return tuple(ContractChange(op, before.line_id, read(before), read(after))
                 for op, read in _LINE_FIELDS if read(before) != read(after))
