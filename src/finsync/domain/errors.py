"""Typed errors and the exception taxonomy (DESIGN §5).

Rules:
- One root, `FinsyncError`. `DomainError` is bad input or a broken rule and is never retried.
- `ConnectorError` splits into `TransientError` (retry with bounded backoff) and
  `PermanentError` (becomes a classified exception in the queue).
- Every error that reaches the exception queue carries an `ExceptionClass`.
"""

from __future__ import annotations

from enum import StrEnum


class ExceptionClass(StrEnum):
    """Root-cause classes that finance works from; values are stable wire names."""

    MASTER_DATA_MISMATCH = "master_data_mismatch"
    SEQUENCING_ERROR = "sequencing_error"
    CLOSED_PERIOD = "closed_period"
    TAX_FAILURE = "tax_failure"
    DUPLICATE_EVENT = "duplicate_event"
    MISSING_REVREC_REFERENCE = "missing_revrec_reference"
    MAPPING_ERROR = "mapping_error"
    OWNERSHIP_VIOLATION = "ownership_violation"
    TARGET_UNAVAILABLE = "target_unavailable"
    RECONCILIATION_BREAK = "reconciliation_break"
    # Not in the field list: a defect in finsync or a connector. Recorded, never swallowed.
    INTERNAL_ERROR = "internal_error"


class FinsyncError(Exception):
    """Root of every error finsync raises on purpose."""

    code: str = "finsync_error"


class DomainError(FinsyncError):
    """Bad input or a broken business rule; retrying cannot help."""

    code = "domain_error"


class CurrencyMismatchError(DomainError):
    code = "currency_mismatch"


class UnknownCurrencyError(DomainError):
    code = "unknown_currency"


class UnbalancedEntryError(DomainError):
    code = "unbalanced_entry"


class MappingError(DomainError):
    """A payload that cannot become a canonical event. Finance sees it as a `mapping_error`,
    unless its code names the class of what a person does about it (`CLASSED_CODES`: a
    payload naming master data finsync has no mapping for is a `master_data_mismatch`).

    `subject` names the source's object the payload is about (`"<type>:<id>"`, e.g.
    `"dispute:du_1"`) when the source knows it: every copy of an unmappable object (a
    webhook, the poller's copy, a resend, another event on it) is then one exception."""

    code = "mapping_error"

    def __init__(self, message: str, *, code: str = "mapping_error",
                 subject: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.subject = subject

    def about(self, subject: str | None) -> MappingError:
        """This error, naming `subject` unless it already names one."""
        if self.subject is not None or subject is None:
            return self
        named = MappingError(str(self), code=self.code, subject=subject)
        named.__cause__ = self.__cause__
        return named

    @property
    def exception_class(self) -> ExceptionClass:
        return CLASSED_CODES.get(self.code, ExceptionClass.MAPPING_ERROR)


# Mapping codes that are an exception class of their own.
CLASSED_CODES = {ExceptionClass.MASTER_DATA_MISMATCH.value: ExceptionClass.MASTER_DATA_MISMATCH}


class SignatureError(FinsyncError):
    """A webhook whose signature does not prove it came from the source it names.

    `code` is one of `signature_missing`, `signature_malformed`, `signature_mismatch`,
    `timestamp_outside_tolerance`.
    """

    code = "signature_error"

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


class ConnectorError(FinsyncError):
    """A call to a system failed; the subclass says whether a retry can help."""

    code = "connector_error"

    def __init__(self, message: str, *, exception_class: ExceptionClass) -> None:
        super().__init__(message)
        self.exception_class = exception_class


class TransientError(ConnectorError):
    """Timeouts, rate limits, lost connections: retry with backoff."""

    code = "transient"

    def __init__(
        self,
        message: str,
        *,
        exception_class: ExceptionClass = ExceptionClass.TARGET_UNAVAILABLE,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, exception_class=exception_class)
        self.retry_after_s = retry_after_s


class PermanentError(ConnectorError):
    """The target refused for a reason a retry will not change."""

    code = "permanent"
