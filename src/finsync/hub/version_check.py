"""The version check: billing's resulting contract against the order the hub sent for a
CPQ version.

Rules:
- When the hub accepts billing's `contract.created`, `.amended`, `.renewed` or
  `.cancelled` whose correlation id is the quote id of an order it sent (the order row of
  `hub.order_desk`), it compares billing's contract with the order line by line
  (`domain.order_check.version_differences`), in the acceptance's transaction
  (`hub.acceptance`, and `hub.batch_acceptance`, which leaves such events to it).
- A difference opens one `master_data_mismatch` per quote (CPQ version) naming each line
  and field, with the order's value of those lines at stake; the order is `mismatch`. A
  check that finds the difference again (a redelivery, a replay) never reopens nor moves
  an exception finance decided (resolved, ignored) or one awaiting approval.
- Agreement resolves the quote's own exception, and the order is `applied`. It resolves
  the mismatches of the contract's earlier versions only when the agreeing order is the
  contract's LATEST order (the highest CPQ version the hub has an order row for, whatever
  its state): billing's contract is the whole contract, so agreeing with the latest order
  means the earlier differences are gone; agreeing with an older version (v1 redelivered
  while v2 is in mismatch) says nothing about the later one. Each resolution records
  `exception_resolved` on the agreeing quote's thread.
- Prices are compared like for like: the order's restated per billing period as billing's
  contract events state them (`domain.order_check.per_period`); the money at stake is the
  order's value of the differing lines for one billing period.
- A renewal billing's own clock made before CPQ's renewal came is correlated to billing's
  renewal, not the quote. Billing answers the order with that version and names its
  correlation id (`"correlation_id"` in the receipt's detail): `answered` records it on the
  order and checks that version if the hub has accepted its event already; otherwise its
  acceptance finds the order by that correlation id and checks it then. Either way the
  order ends `applied` or `mismatch`, never `sent` once billing answered. (`answered`
  does the same for an order re-sent after its check, e.g. replayed under a newer
  catalogue version: billing answers with its first receipt and sends no new event.)
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
from finsync.domain.order_check import LineDifference, per_period, version_differences
from finsync.domain.status import UNRESOLVED, EventStatus, ExceptionStatus, OrderState
from finsync.hub.milestone import Milestone
from finsync.storage import cpq_log, event_log, exception_log, milestone_log
from finsync.storage.exception_log import NewException

FINGERPRINT = "master_data_mismatch:cpq_version:"
HUB = "hub"
COMPONENT = "quote_to_cash"  # the component resolving the commercial layer's exceptions
_MINOR_MAX = 2**63  # the exception queue's amount column
_CHECKED = (ContractCreated, ContractAmended, ContractRenewed, ContractCancelled)


def fingerprint(quote_id: str) -> str:
    """The one version-check exception of a quote (a CPQ version's order)."""
    return f"{FINGERPRINT}{quote_id}"


def acts_on(event: AnyEvent) -> bool:
    """Whether accepting `event` may need the check (batch acceptance leaves it alone)."""
    return isinstance(event, _CHECKED)


def accepted(conn: Connection, env: Envelope, at: datetime) -> None:
    """What the hub does on accepting `env`: check billing's contract against its order."""
    if not isinstance(env.event, _CHECKED):
        return
    record = (cpq_log.order(conn, env.correlation_id)
              or cpq_log.order_answered_by(conn, env.correlation_id))
    if record is not None:
        _check(conn, record, env, at)


def answered(conn: Connection, quote_id: str, correlation_id: str | None,
             at: datetime) -> None:
    """Billing answered the order of `quote_id`. When it answered with a version it made
    itself, `correlation_id` is that version's (recorded on the order). An order still
    `sent` whose billing contract event the hub has accepted already (billing's own
    version, or a replayed order re-sent after its check) is checked now; otherwise
    `accepted` checks it when the event comes."""
    if correlation_id is not None and correlation_id != quote_id:
        cpq_log.set_billing_correlation(conn, quote_id, correlation_id, at)
    record = cpq_log.order(conn, quote_id)
    if record is None or record.state is not OrderState.SENT:
        return
    for row in reversed(event_log.chain(conn, record.billing_correlation_id or quote_id)):
        if row["status"] != EventStatus.ACCEPTED or row["aggregate_id"] != record.contract_id:
            continue
        env = event_log.get(conn, str(row["event_id"]))
        if env is not None and isinstance(env.event, _CHECKED):
            _check(conn, record, env, at)
            return


def _check(conn: Connection, record: cpq_log.OrderRecord, env: Envelope,
           at: datetime) -> None:
    event = env.event
    if record.order is None or not isinstance(event, _CHECKED):
        return
    document = event.document
    billed = document.contract if isinstance(document, ContractAmendment) else document
    assert isinstance(billed, SubscriptionContract)
    found = version_differences(record.order, billed, isinstance(event, ContractCancelled))
    if not found:
        _agreed(conn, record, env, billed, at)
        return
    told = "; ".join(d.describe() for d in found)
    cpq_log.set_order_state(conn, record.quote_id, OrderState.MISMATCH, told, at)
    key = fingerprint(record.quote_id)
    latest = exception_log.latest_by_fingerprint(conn, (key,)).get(key)
    if latest is not None and latest[1] not in UNRESOLVED:
        return  # finance already decided on this quote's difference (a redelivery)
    status = ExceptionStatus.OPEN if latest is None else latest[1]
    exception_log.open_exception(conn, NewException(
        ExceptionClass.MASTER_DATA_MISMATCH, key,
        f"billing's contract {billed.id} v{billed.version} differs from CPQ "
        f"v{record.cpq_version} (quote {record.quote_id}) in {len(found)} field(s): {told}",
        correlation_id=record.quote_id,
        objects=(f"commercial_contract:{record.contract_id}", f"quote:{record.quote_id}",
                 f"event:{env.event_id}",
                 *(f"line:{line_id}" for line_id in sorted({d.line_id for d in found}))),
        amount=_ordered_value(record.order, billed, found), event_id=env.event_id,
        status=status), at)


def _agreed(conn: Connection, record: cpq_log.OrderRecord, env: Envelope,
            billed: SubscriptionContract, at: datetime) -> None:
    """Billing's contract agrees with the order of `record`: that quote's mismatch is
    resolved, and the earlier versions' too when this is the contract's latest order."""
    cpq_log.set_order_state(conn, record.quote_id, OrderState.APPLIED, None, at)
    orders = cpq_log.orders_of(conn, record.contract_id)
    keys = [fingerprint(record.quote_id)]
    if max(o.cpq_version for o in orders) == record.cpq_version:
        keys += [fingerprint(o.quote_id) for o in orders
                 if o.cpq_version < record.cpq_version]
        keys.append(fingerprint(record.contract_id))  # one opened per contract before
    note = (f"billing's contract {billed.id} v{billed.version} agrees with CPQ "
            f"v{record.cpq_version} (quote {record.quote_id})")
    resolved = False
    for key in keys:
        resolved = bool(correction.resolve(conn, COMPONENT, key, note, at)) or resolved
    if resolved:
        milestone_log.record(conn, record.quote_id, Milestone.EXCEPTION_RESOLVED,
                             env.event_id, HUB, at)


def _ordered_value(order: SubscriptionOrder, billed: SubscriptionContract,
                   found: tuple[LineDifference, ...]) -> Money | None:
    """What the order said the differing lines are worth a billing period (the whole order
    when the difference is the contract's own)."""
    named = {d.line_id for d in found}
    lines = [ln for ln in order.lines if ln.line_id in named] or list(order.lines)
    months = billed.billing_frequency.months
    value = per_currency(per_period(ln, months).unit_price * ln.quantity for ln in lines)
    return storable_stake(value[0]) if len(value) == 1 else None


def storable_stake(amount: Money) -> Money | None:
    """`amount` quantized, or None past what the exception queue stores (64-bit minor
    units): the exception still opens, without an amount, rather than failing its
    transaction."""
    quantized = amount.quantize()
    return quantized if abs(quantized.to_minor()) < _MINOR_MAX else None
