"""Typed errors of the revenue engine.

Rules:
- Every error is a `DomainError`: bad input or a broken ASC 606 rule, never retried.
- Each names what a person can fix (a missing SSP, an unknown obligation, an impossible
  allocation), so the service layer can class it without reading the message.
"""

from __future__ import annotations

from finsync.domain.errors import DomainError


class RevenueError(DomainError):
    """Root of the revenue engine's errors."""

    code = "revenue_error"


class MissingStandaloneSellingPriceError(RevenueError):
    code = "missing_standalone_selling_price"


class AllocationError(RevenueError):
    """The transaction price cannot be allocated as the inputs ask."""

    code = "allocation_error"


class ModificationError(RevenueError):
    """A contract modification that the engine cannot account for as given."""

    code = "modification_error"


class CustomerOptionError(RevenueError):
    """A customer option (material right, 606-10-55-41 to 55-45) stated or used wrongly:
    an unknown option, one exercised twice or after it expired, impossible estimates."""

    code = "customer_option_error"


class UnknownObligationError(RevenueError):
    code = "unknown_obligation"


class ContractMismatchError(RevenueError):
    """An event that names another contract, entity or currency than the state it meets."""

    code = "contract_mismatch"


class AccountMappingError(RevenueError):
    code = "account_mapping_error"


class UnknownRevenueContractError(RevenueError):
    """No revenue contract (yet) for the subscription contract or invoice a call names."""

    code = "unknown_revenue_contract"


class IdempotencyMismatchError(RevenueError):
    """The same idempotency key came back with another body."""

    code = "idempotency_mismatch"


class RevenueBusyError(RevenueError):
    """Another writer changed the revenue contract first; the call can be retried."""

    code = "revenue_busy"


class MeasureError(RevenueError):
    """A measure of progress that cannot be taken as reported (percent, costs, materials)."""

    code = "measure_error"
