"""The commercial layer's reads: the CPQ contracts a page at a time, and the quote-to-cash
status of one.

Rules:
- `GET /v1/cpq/contracts?state=&limit=&offset=` needs `finance:read`; it renders
  `hub.cpq_contracts` (orders per state, then one page of contracts with their latest CPQ
  version and its order state). An unknown state or a limit off 1..200 is 422.
- `GET /v1/cpq/contracts/{contract_id}` needs `finance:read`; it renders
  `hub.cpq_status` (its versions, each order's state, deliveries, milestones and
  exceptions, the renewal baseline, the catalogue version in force). A contract the hub
  holds no version of is 404 `not_found`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, Path, Query

from finsync.api import security
from finsync.api.params import BIGINT_MAX, ID_MAX_CHARS, PRINTABLE
from finsync.auth.principal import FINANCE_READ
from finsync.domain.errors import DomainError
from finsync.domain.status import OrderState
from finsync.hub import cpq_contracts, cpq_status
from finsync.hub.service import Hub

_READS = security.needs(FINANCE_READ)
ContractId = Annotated[str, Path(min_length=1, max_length=ID_MAX_CHARS, pattern=PRINTABLE,
                                 description="A CPQ contract's id.")]
StateFilter = Annotated[OrderState | None, Query(
    description="Only the contracts with an order in this state.")]
Limit = Annotated[int, Query(ge=1, le=cpq_contracts.PAGE_MAX)]
Offset = Annotated[int, Query(ge=0, le=BIGINT_MAX)]


class UnknownCpqContractError(DomainError):
    code = "not_found"


def register(app: FastAPI, hub: Hub) -> None:
    """The quote-to-cash routes on `app`, reading `hub`'s records."""

    @app.get("/v1/cpq/contracts", openapi_extra=_READS)
    def cpq_contract_list(state: StateFilter = None, limit: Limit = 50,
                          offset: Offset = 0) -> dict[str, Any]:
        """How many CPQ orders are in each state (held, sent, refused, applied, mismatch),
        then one page of the CPQ contracts by id (with `state`: those with an order in that
        state), each with its latest CPQ version and that version's order state."""
        return cpq_contracts.as_json(cpq_contracts.contracts(hub.engine, state, limit, offset))

    @app.get("/v1/cpq/contracts/{contract_id}", openapi_extra=_READS)
    def cpq_contract(contract_id: ContractId) -> dict[str, Any]:
        """Each CPQ version of the contract: its order to billing (held, sent, applied,
        mismatch), deliveries, milestones and exceptions."""
        status = cpq_status.contract_status(hub.engine, contract_id)
        if status is None:
            raise UnknownCpqContractError(f"the hub holds no CPQ version of contract "
                                          f"{contract_id!r}")
        return cpq_status.as_json(status)
