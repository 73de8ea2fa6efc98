"""Typed errors of the revenue engine.

Rules:
- Every error is a `DomainError`: bad input or a broken ASC 606 rule, never retried.
- Each names what a person can fix (a missing SSP, an unknown obligation, an impossible
  allocation), so the service layer can class it without reading the message.
"""

from __future__ import annotations

from finsync.domain.errors import DomainError
from finsync.domain.money import Money


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
class ResidualOutOfRangeError(AllocationError):
    """The residual approach gives an obligation an amount outside its product's observed
    range of selling prices (606-10-32-34(c)): the residual does not approximate its SSP, so
    the SSP must be estimated by another method (adjusted market assessment, expected cost
    plus a margin) and the price allocated by relative SSP."""

    code = "residual_out_of_range"

    def __init__(self, product_id: str, obligation_id: str, residual: Money, low: Money,
                 high: Money) -> None:
        self.product_id = product_id
        self.obligation_id = obligation_id
        self.residual = residual
        self.low = low
        self.high = high
        super().__init__(
            f"the residual approach leaves {residual} for {product_id} (obligation "
            f"{obligation_id}), outside its observed SSP range {low} to {high} "
            "(606-10-32-34(c)): estimate its SSP by another method and allocate by "
            "relative SSP")
