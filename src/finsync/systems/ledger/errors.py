"""The ledger's errors, each named for what a person can do about it."""

from __future__ import annotations

from finsync.domain.errors import DomainError, FinsyncError


class LedgerError(DomainError):
    code = "ledger_error"


class UnknownEntityError(LedgerError):
    code = "unknown_entity"


class UnknownAccountError(LedgerError):
    code = "unknown_account"


class ClosedPeriodError(LedgerError):
    code = "closed_period"


class PeriodNotFoundError(LedgerError):
    code = "period_not_found"


class FxRateMissingError(LedgerError):
    code = "fx_rate_missing"


class IdempotencyMismatchError(LedgerError):
    code = "idempotency_mismatch"


class DuplicateDocumentError(LedgerError):
    """The document is already in the books under another idempotency key."""

    code = "duplicate_document"


class UnknownDocumentError(LedgerError):
    code = "unknown_document"


class ChartError(LedgerError):
    code = "invalid_chart"


class LedgerBusyError(FinsyncError):
    """Over the configured rate limit or concurrency: come back later."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
