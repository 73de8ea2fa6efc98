"""The embedded billing platform as the usage port: one usage record, one billing command.

Rules:
- `record_usage` executes billing's `RecordUsage` (idempotent by the record's id: the same
  record again changes nothing, the same id with another quantity is refused).
- A billing rule that refuses the record is a `PermanentError` carrying the rule's code and
  exception class; the billing database failing is a `TransientError`.
- `usage_periods` reads billing's rating periods (`systems.billing.usage.usage_periods`)
  in one read-only transaction.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.exc import DBAPIError

from finsync.connectors.ports import DeliveryContext, Receipt
from finsync.dbsnapshot import read_snapshot
from finsync.domain.clock import Period
from finsync.domain.errors import PermanentError, TransientError
from finsync.domain.invoice import UsageRecord
from finsync.systems.billing.errors import BillingError, BillingStorageError
from finsync.systems.billing.handler import RecordUsage
from finsync.systems.billing.service import BillingService
from finsync.systems.billing.usage import usage_periods


class UsageRefusedError(PermanentError):
    """Billing refused a usage record; `code` is the refusing rule's."""

    def __init__(self, error: BillingError) -> None:
        super().__init__(str(error), exception_class=error.exception_class)
        self.code = error.code


class EmbeddedUsage:
    def __init__(self, system: str, service: BillingService) -> None:
        self.system, self._service = system, service

    def record_usage(self, record: UsageRecord, ctx: DeliveryContext) -> Receipt:
        try:
            self._service.execute(RecordUsage(record))
        except BillingError as exc:
            raise UsageRefusedError(exc) from exc
        except BillingStorageError as exc:
            raise TransientError(f"billing could not record usage {record.id}: {exc}") from exc
        return Receipt(record.id)

    def usage_periods(self, spans: Mapping[str, Period]) -> Mapping[str, tuple[Period, ...]]:
        try:
            with read_snapshot(self._service.engine) as conn:  # no write lock taken
                return usage_periods(conn, spans)
        except DBAPIError as exc:
            raise TransientError(f"billing could not read usage periods: {exc}") from exc
