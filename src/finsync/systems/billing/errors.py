"""Billing errors, each named for what a person can do about it.

Rules:
- Every error is a `DomainError` (bad input or a broken rule, never retried) and carries the
  `ExceptionClass` it becomes when it reaches the exception queue.
- Unknown references are master-data mismatches; a missing tax rate is a `tax_failure`, never
  a zero tax; a re-sent id with different content is a `duplicate_event`.
- The one exception is `BillingStorageError` (the service's database failed): not a broken
  rule, so not a `DomainError`; the command did not happen and may be retried.
"""

from __future__ import annotations

from typing import ClassVar

from finsync.domain.errors import (
    CurrencyMismatchError,
    DomainError,
    ExceptionClass,
    FinsyncError,
)


class BillingError(DomainError):
    code = "billing_error"
    exception_class: ClassVar[ExceptionClass] = ExceptionClass.MAPPING_ERROR


class InvalidCommandError(BillingError):
    """The command breaks a billing rule (an empty amendment, a bad date, a bad amount)."""

    code = "invalid_command"


class InvalidQuantityError(InvalidCommandError):
    code = "invalid_quantity"


class AmendmentDateError(InvalidCommandError):
    code = "amendment_date"


class ContractStateError(InvalidCommandError):
    """The subscription's status does not allow the command (e.g. amending a cancelled one)."""

    code = "contract_state"


class CatalogError(InvalidCommandError):
    code = "invalid_catalog"


class BillingCurrencyError(BillingError, CurrencyMismatchError):
    code = "currency_mismatch"


class CreditExceedsInvoiceError(InvalidCommandError):
    code = "credit_exceeds_invoice"


class RefundExceedsPaymentError(InvalidCommandError):
    code = "refund_exceeds_payment"


class OverpaymentError(InvalidCommandError):
    code = "overpayment"


class UnknownReferenceError(BillingError):
    code = "unknown_reference"
    exception_class = ExceptionClass.MASTER_DATA_MISMATCH


class UnknownCustomerError(UnknownReferenceError):
    code = "unknown_customer"


class UnknownProductError(UnknownReferenceError):
    code = "unknown_product"


class UnknownPriceError(UnknownProductError):
    code = "unknown_price"


class UnknownContractError(UnknownReferenceError):
    code = "unknown_contract"


class UnknownLineError(UnknownReferenceError):
    code = "unknown_line"


class UnknownDocumentError(UnknownReferenceError):
    """An invoice or payment id that billing never issued or received."""

    code = "unknown_document"


class DuplicateIdError(BillingError):
    code = "duplicate_id"
    exception_class = ExceptionClass.DUPLICATE_EVENT


class UsagePeriodClosedError(BillingError):
    """Usage dated in a period that is already rated; it needs a credit or debit memo."""

    code = "usage_period_closed"
    exception_class = ExceptionClass.CLOSED_PERIOD


class TaxInclusivePriceError(CatalogError):
    """A subscription price that says its amount includes tax (only one-off prices may)."""

    code = "tax_inclusive_price"


class TaxRatesMovedError(CatalogError):
    """A billing catalogue with `[[tax_rates]]`: tax rates live in the tax engine's file."""

    code = "tax_rates_moved"


class ClockLimitError(BillingError):
    """The billing clock ran more steps than its bound: a defect, not a business case."""

    code = "clock_limit"
    exception_class = ExceptionClass.INTERNAL_ERROR


class BillingStorageError(FinsyncError):
    """The billing database refused or lost a write; the command did not happen (retry it)."""

    code = "billing_storage"
