"""The order desk: turns an approved CPQ version into the order billing takes, records it
before it goes out, and keeps the renewal baseline once billing has applied it.

Rules:
- An order is translated with the catalogue map in force (`hub.catalog_map`). A product
  the map cannot translate (or no map at all) holds the order before anything reaches
  billing: the order row is `held` under its delivery key, and the delivery fails as a
  `PermanentError` of class `master_data_mismatch` naming each line and product. Loading a
  new map version retries it (`hub.catalog_map.load`).
- The order is recorded (`sent`, with its body and the catalogue version it was
  translated with) before it is sent, so that billing's resulting contract event always
  finds it (`hub.version_check`). A redelivery (a retry, a replay, a requeue) sends the
  recorded order again, never a re-translation with today's map: billing may have applied
  it, and its idempotency by order id answers the first receipt. Only an order billing
  refused (nothing applied) is translated again with the map in force. A re-send leaves
  an order `applied` or in `mismatch` as it is, and a hold never overwrites a recorded
  order billing may have.
- A renewal is checked against the contract's renewal baseline before it is ordered
  (`domain.order_check.renewal_differences`). A difference opens one
  `master_data_mismatch` per quote naming each line and field, with the renewal value of
  those lines at stake; it does **not** hold the order. CPQ owns the commercial terms and
  approved this price; holding a renewal would lapse the customer's service at term end
  while finance looks, and billing can only charge what CPQ approved. Finance sees the
  variance before the renewal invoice is paid and corrects it in CPQ (a new version) or
  resolves the exception; a redelivery (replay) never reopens what finance decided, nor
  moves one awaiting approval.
- Billing refusing an order (`PermanentError` from the platform) makes it `refused`, with
  the refusal's code and message; the delivery's exception is finance's to act on, and a
  retry billing takes records it `sent` again (then `applied` or `mismatch` by the
  version check). Billing committing something other than the order
  (`connectors.ports.OrderNotAppliedError`) makes it `mismatch` (the delivery's exception
  is `master_data_mismatch`). Any other failure (billing unavailable, retried until
  attempts run out; a defect) makes it `failed`, with the error's class and message. None
  of these moves an order billing's contract event settled (`applied`, `mismatch`).
- Once billing has applied an order, the contract's renewal baseline becomes that
  version's (`storage.cpq_log.store_baseline`: never an older version's), and the version
  check is told (`hub.version_check.answered`): billing may have answered with a version
  it made itself (the receipt's `"correlation_id"`: a renewal its clock made first), or
  with its first receipt to an order re-sent after its check.
- Every step is idempotent: a delivery sent again after a worker died writes the same rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import Connection, Engine

from finsync.audit import correction
from finsync.connectors.ports import ANSWERED_AS, DeliveryContext, Receipt
from finsync.domain.catalog_map import CatalogMapError, UnmappedProductError, translate
from finsync.domain.commercial import CommercialContract, CommercialKind, SubscriptionOrder
from finsync.domain.errors import ExceptionClass, PermanentError, TransientError
from finsync.domain.money import Money, per_currency
from finsync.domain.order_check import LineDifference, baseline_of, renewal_differences
from finsync.domain.status import (
    SETTLED_ORDER_STATES,
    UNRESOLVED,
    ExceptionStatus,
    OrderState,
)
from finsync.hub import version_check
from finsync.hub.version_check import storable_stake
from finsync.storage import cpq_log, exception_log
from finsync.storage.cpq_log import OrderRecord
from finsync.storage.db import StorageUnavailableError, transaction
from finsync.storage.exception_log import NewException

RENEWAL_FINGERPRINT = "master_data_mismatch:renewal_baseline:"


def renewal_fingerprint(quote_id: str) -> str:
    return f"{RENEWAL_FINGERPRINT}{quote_id}"


class OrderDesk:
    def __init__(self, engine: Engine, clock: Callable[[], datetime]) -> None:
        self._engine, self._clock = engine, clock

    def order(self, contract: CommercialContract, ctx: DeliveryContext) -> SubscriptionOrder:
        """The order for `contract`, recorded as sent; `PermanentError` when held,
        `TransientError` when the hub's database cannot be reached (retried). An order
        recorded before (and not refused) is sent again as recorded, whatever map is in
        force now: billing may have applied it."""
        with _hub(self._engine) as conn:
            before = cpq_log.order(conn, contract.quote_id)
        if (before is not None and before.order is not None
                and before.state is not OrderState.REFUSED):
            order, catalog_version = before.order, before.catalog_version
        else:
            order, catalog_version = self._translate(contract, ctx)
        at = self._clock()
        with _hub(self._engine) as conn:
            if contract.kind is CommercialKind.RENEWAL:
                self._check_renewal(conn, contract, ctx, at)
            before = cpq_log.order(conn, order.id)
            if before is None or before.state not in SETTLED_ORDER_STATES:
                cpq_log.record_order(conn, _record(contract, OrderState.SENT,
                                                   catalog_version, ctx, order, None, at))
        return order

    def applied(self, contract: CommercialContract, receipt: Receipt) -> None:
        """Billing applied the order of `contract`: the contract's renewal baseline moves,
        and a version billing made itself is checked against the order. (Failing here
        retries the delivery: billing answers it with its first receipt.)"""
        at = self._clock()
        answered_as = receipt.detail.get(ANSWERED_AS) or None
        with _hub(self._engine) as conn:
            cpq_log.store_baseline(conn, baseline_of(contract), at)
            version_check.answered(conn, contract.quote_id, answered_as, at)

    def refused(self, order: SubscriptionOrder, error: PermanentError) -> None:
        """Billing refused `order`: it is `refused`, with the refusal's code and message
        (unless billing's contract event settled it first)."""
        told = str(error)
        if not told.startswith(f"{error.code}:"):
            told = f"{error.code}: {told}"
        self._settle(order, OrderState.REFUSED, told)

    def differs(self, order: SubscriptionOrder, error: PermanentError) -> None:
        """Billing changed the contract, but not as `order` said: it is `mismatch` (the
        delivery fails with the error's `master_data_mismatch`)."""
        self._settle(order, OrderState.MISMATCH, str(error))

    def failed(self, order: SubscriptionOrder, error: Exception) -> None:
        """Sending `order` failed otherwise (billing unavailable, a defect): it is `failed`,
        with the error's class and message, until an attempt gets an answer."""
        self._settle(order, OrderState.FAILED, f"{type(error).__name__}: {error}")

    def _settle(self, order: SubscriptionOrder, state: OrderState, detail: str) -> None:
        with _hub(self._engine) as conn:
            cpq_log.set_order_state(conn, order.id, state, detail, self._clock(),
                                    unless=SETTLED_ORDER_STATES)

    def _translate(self, contract: CommercialContract,
                   ctx: DeliveryContext) -> tuple[SubscriptionOrder, int]:
        try:
            with _hub(self._engine) as conn:
                found = cpq_log.current_catalog(conn)
            if found is None:
                raise CatalogMapError("no catalogue map is loaded ([cpq] catalog)")
            return translate(contract, found[1], found[0]), found[0]
        except (UnmappedProductError, CatalogMapError) as exc:
            self._hold(contract, ctx, str(exc))
            raise PermanentError(f"held before billing: {exc}",
                                 exception_class=ExceptionClass.MASTER_DATA_MISMATCH) from exc

    def _hold(self, contract: CommercialContract, ctx: DeliveryContext, why: str) -> None:
        """Record the order `held`, unless billing may have it: only a new row, a held one
        or one billing refused is held (never a row sent, failed, applied or in mismatch)."""
        at = self._clock()
        with _hub(self._engine) as conn:
            before = cpq_log.order(conn, contract.quote_id)
            if before is not None and before.state not in (OrderState.HELD, OrderState.REFUSED):
                return
            found = cpq_log.current_catalog(conn)
            version = None if found is None else found[0]
            cpq_log.record_order(conn, _record(contract, OrderState.HELD, version, ctx, None,
                                               why, at))

    def _check_renewal(self, conn: Connection, contract: CommercialContract,
                       ctx: DeliveryContext, at: datetime) -> None:
        baseline = cpq_log.baseline(conn, contract.id)
        key = renewal_fingerprint(contract.quote_id)
        if baseline is None:
            return  # the contract's earlier versions went to billing before this hub did
        found = renewal_differences(baseline, contract)
        if not found:
            correction.resolve(conn, version_check.COMPONENT, key,
                               "the renewal agrees with its baseline", at)
            return
        latest = exception_log.latest_by_fingerprint(conn, (key,)).get(key)
        if latest is not None and latest[1] not in UNRESOLVED:
            return  # finance already decided on this quote's variance (a redelivery)
        status = ExceptionStatus.OPEN if latest is None else latest[1]
        amount = _renewal_value(contract, found)
        exception_log.open_exception(conn, NewException(
            ExceptionClass.MASTER_DATA_MISMATCH, key,
            f"renewal {contract.quote_id} of contract {contract.id} (CPQ v{contract.version}) "
            f"differs from its renewal baseline (v{baseline.cpq_version}, uplift "
            f"{baseline.uplift_percent} %): "
            f"{'; '.join(d.describe() for d in found)}; ordered as CPQ approved it",
            correlation_id=contract.quote_id,
            objects=(f"commercial_contract:{contract.id}", f"quote:{contract.quote_id}",
                     *(f"line:{line_id}" for line_id in sorted({d.line_id for d in found}))),
            amount=amount, event_id=ctx.event_id, status=status), at)


@contextmanager
def _hub(engine: Engine) -> Iterator[Connection]:
    """A unit of work on the hub's tables inside a delivery: the database unreachable is a
    `TransientError` (the delivery is retried), not a defect."""
    try:
        with transaction(engine) as conn:
            yield conn
    except StorageUnavailableError as exc:
        raise TransientError(f"the hub's database is unavailable: {exc}") from exc


def _renewal_value(contract: CommercialContract,
                   found: tuple[LineDifference, ...]) -> Money | None:
    """What the differing lines renew for (one currency: the contract's)."""
    named = {d.line_id for d in found}
    value = per_currency(line.net_unit_price * line.quantity for line in contract.lines
                         if line.line_id in named)
    return storable_stake(value[0]) if len(value) == 1 else None


def _record(contract: CommercialContract, state: OrderState, catalog_version: int | None,
            ctx: DeliveryContext, order: SubscriptionOrder | None, detail: str | None,
            at: datetime) -> OrderRecord:
    return OrderRecord(contract.quote_id, contract.id, contract.version, contract.kind.value,
                       state, catalog_version, ctx.delivery_key, order, detail, at)
