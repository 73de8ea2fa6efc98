"""The version check: billing's resulting contract against the order the hub sent for a
CPQ version.

Rules:
- When the hub accepts billing's `contract.created`, `.amended`, `.renewed` or
  `.cancelled` whose correlation id is the quote id of an order it sent (the order row of
  `hub.order_desk`), it compares billing's contract with the order line by line
  (`domain.order_check.version_differences`), in the acceptance's transaction
  (`hub.acceptance`, and `hub.batch_acceptance`, which leaves such events to it).
- A difference opens one `master_data_mismatch` per contract naming each line and field,
  with the order's value of those lines at stake; the order is `mismatch`. A later version
  of billing's contract that agrees with its order resolves it (billing's contract is the
  whole contract, so agreeing now means the difference is gone) and records
  `exception_resolved` on the thread; that order is `applied`.
- A contract event with no order behind it (billing's own change, a contract from before
  the commercial layer) is not checked.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from finsync.audit import correction
from finsync.domain.commercial import SubscriptionOrder
from finsync.domain.contract import ContractAmendment, SubscriptionContract
from finsync.domain.envelope import Envelope
from finsync.domain.errors import ExceptionClass
from finsync.domain.events import (
    AnyEvent,
    ContractAmended,
    ContractCancelled,
    ContractCreated,
    ContractRenewed,
)
from finsync.domain.money import Money, per_currency
from finsync.domain.order_check import LineDifference, version_differences
from finsync.domain.status import OrderState
from finsync.hub.milestone import Milestone
from finsync.hub.order_desk import storable_stake
from finsync.storage import cpq_log, exception_log, milestone_log
from finsync.storage.exception_log import NewException

FINGERPRINT = "master_data_mismatch:cpq_version:"
HUB = "hub"
_CHECKED = (ContractCreated, ContractAmended, ContractRenewed, ContractCancelled)


def fingerprint(contract_id: str) -> str:
    """The one version-check exception of a contract."""
    return f"{FINGERPRINT}{contract_id}"


def acts_on(event: AnyEvent) -> bool:
    """Whether accepting `event` may need the check (batch acceptance leaves it alone)."""
    return isinstance(event, _CHECKED)


def accepted(conn: Connection, env: Envelope, at: datetime) -> None:
    """What the hub does on accepting `env`: check billing's contract against its order."""
    event = env.event
    if not isinstance(event, _CHECKED):
        return
    record = cpq_log.order(conn, env.correlation_id)
    if record is None or record.order is None:
        return
    document = event.document
    billed = document.contract if isinstance(document, ContractAmendment) else document
    assert isinstance(billed, SubscriptionContract)
    found = version_differences(record.order, billed, isinstance(event, ContractCancelled))
    key = fingerprint(record.contract_id)
    if not found:
        cpq_log.set_order_state(conn, record.quote_id, OrderState.APPLIED, None, at)
        note = (f"billing's contract {billed.id} v{billed.version} agrees with CPQ "
                f"v{record.cpq_version} (quote {record.quote_id})")
        if correction.resolve(conn, "quote_to_cash", key, note, at):
            milestone_log.record(conn, env.correlation_id, Milestone.EXCEPTION_RESOLVED,
                                 env.event_id, HUB, at)
        return
    told = "; ".join(d.describe() for d in found)
    cpq_log.set_order_state(conn, record.quote_id, OrderState.MISMATCH, told, at)
    exception_log.open_exception(conn, NewException(
        ExceptionClass.MASTER_DATA_MISMATCH, key,
        f"billing's contract {billed.id} v{billed.version} differs from CPQ "
        f"v{record.cpq_version} (quote {record.quote_id}) in {len(found)} field(s): {told}",
        correlation_id=env.correlation_id,
        objects=(f"commercial_contract:{record.contract_id}", f"quote:{record.quote_id}",
                 f"event:{env.event_id}",
                 *(f"line:{line_id}" for line_id in sorted({d.line_id for d in found}))),
        amount=_ordered_value(record.order, found), event_id=env.event_id), at)


def _ordered_value(order: SubscriptionOrder, found: tuple[LineDifference, ...]) -> Money | None:
    """What the order said the differing lines are worth a billing period (the whole order
    when the difference is the contract's own)."""
    named = {d.line_id for d in found}
    lines = [ln for ln in order.lines if ln.line_id in named] or list(order.lines)
    value = per_currency(ln.unit_price * ln.quantity for ln in lines)
    return storable_stake(value[0]) if len(value) == 1 else None
