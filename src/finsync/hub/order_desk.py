"""The order desk: turns an approved CPQ version into the order billing takes, records it
before it goes out, and keeps the renewal baseline once billing has applied it.

Rules:
- An order is translated with the catalogue map in force (`hub.catalog_map`). A product
  the map cannot translate (or no map at all) holds the order before anything reaches
  billing: the order row is `held` under its delivery key, and the delivery fails as a
  `PermanentError` of class `master_data_mismatch` naming each line and product. Loading a
  new map version retries it (`hub.catalog_map.load`).
- The order is recorded (`sent`, with its body) before it is sent, so that billing's
  resulting contract event always finds it (`hub.version_check`). A re-send of an order
  already applied or in mismatch, unchanged, leaves its state as it is.
- A renewal is checked against the contract's renewal baseline before it is ordered
  (`domain.order_check.renewal_differences`). A difference opens one
  `master_data_mismatch` per quote naming each line and field, with the renewal value of
  those lines at stake; it does **not** hold the order. CPQ owns the commercial terms and
  approved this price; holding a renewal would lapse the customer's service at term end
  while finance looks, and billing can only charge what CPQ approved. Finance sees the
  variance before the renewal invoice is paid and corrects it in CPQ (a new version) or
  resolves the exception; a redelivery (replay) never reopens what finance decided, nor
  moves one awaiting approval.
- Once billing has applied an order, the contract's renewal baseline becomes that
  version's (`storage.cpq_log.store_baseline`: never an older version's).
- Every step is idempotent: a delivery sent again after a worker died writes the same rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import Connection, Engine

from finsync.audit import correction
from finsync.connectors.ports import DeliveryContext
from finsync.domain.catalog_map import CatalogMapError, UnmappedProductError, translate
from finsync.domain.commercial import CommercialContract, CommercialKind, SubscriptionOrder
from finsync.domain.errors import ExceptionClass, PermanentError, TransientError
from finsync.domain.money import Money, per_currency
from finsync.domain.order_check import LineDifference, baseline_of, renewal_differences
from finsync.domain.status import UNRESOLVED, ExceptionStatus, OrderState
from finsync.storage import cpq_log, exception_log
from finsync.storage.cpq_log import OrderRecord
from finsync.storage.db import StorageUnavailableError, transaction
from finsync.storage.exception_log import NewException

RENEWAL_FINGERPRINT = "master_data_mismatch:renewal_baseline:"
_MINOR_MAX = 2**63  # the exception queue's amount column


def renewal_fingerprint(quote_id: str) -> str:
    return f"{RENEWAL_FINGERPRINT}{quote_id}"


class OrderDesk:
    def __init__(self, engine: Engine, clock: Callable[[], datetime]) -> None:
        self._engine, self._clock = engine, clock

    def order(self, contract: CommercialContract, ctx: DeliveryContext) -> SubscriptionOrder:
        """The order for `contract`, recorded as sent; `PermanentError` when held,
        `TransientError` when the hub's database cannot be reached (retried)."""
        try:
            with _hub(self._engine) as conn:
                found = cpq_log.current_catalog(conn)
            if found is None:
                raise CatalogMapError("no catalogue map is loaded ([cpq] catalog)")
            order = translate(contract, found[1], found[0])
        except (UnmappedProductError, CatalogMapError) as exc:
            self._hold(contract, ctx, str(exc))
            raise PermanentError(f"held before billing: {exc}",
                                 exception_class=ExceptionClass.MASTER_DATA_MISMATCH) from exc
        at = self._clock()
        with _hub(self._engine) as conn:
            if contract.kind is CommercialKind.RENEWAL:
                self._check_renewal(conn, contract, ctx, at)
            before = cpq_log.order(conn, order.id)
            if (before is None or before.order != order
                    or before.state not in (OrderState.APPLIED, OrderState.MISMATCH)):
                cpq_log.record_order(conn, _record(contract, OrderState.SENT, found[0], ctx,
                                                   order, None, at))
        return order

    def applied(self, contract: CommercialContract) -> None:
        """Billing applied the order of `contract`: the contract's renewal baseline moves.
        (Failing here retries the delivery: billing answers it with its first receipt.)"""
        with _hub(self._engine) as conn:
            cpq_log.store_baseline(conn, baseline_of(contract), self._clock())

    def _hold(self, contract: CommercialContract, ctx: DeliveryContext, why: str) -> None:
        at = self._clock()
        with _hub(self._engine) as conn:
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
            correction.resolve(conn, "quote_to_cash", key,
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


def storable_stake(amount: Money) -> Money | None:
    """`amount` quantized, or None past what the exception queue stores (64-bit minor
    units): the exception still opens, without an amount, rather than failing its
    transaction."""
    quantized = amount.quantize()
    return quantized if abs(quantized.to_minor()) < _MINOR_MAX else None


def _record(contract: CommercialContract, state: OrderState, catalog_version: int | None,
            ctx: DeliveryContext, order: SubscriptionOrder | None, detail: str | None,
            at: datetime) -> OrderRecord:
    return OrderRecord(contract.quote_id, contract.id, contract.version, contract.kind.value,
                       state, catalog_version, ctx.delivery_key, order, detail, at)
