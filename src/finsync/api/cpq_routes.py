"""The commercial layer's read: the quote-to-cash status of a CPQ contract.

Rules:
- `GET /v1/cpq/contracts/{contract_id}` needs `finance:read`; it renders
  `hub.cpq_status` (its versions, each order's state, deliveries, milestones and
  exceptions, the renewal baseline, the catalogue version in force). A contract the hub
  holds no version of is 404 `not_found`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, Path

from finsync.api import security
from finsync.api.params import ID_MAX_CHARS, PRINTABLE
from finsync.auth.principal import FINANCE_READ
from finsync.domain.errors import DomainError
from finsync.hub import cpq_status
from finsync.hub.service import Hub

_READS = security.needs(FINANCE_READ)
ContractId = Annotated[str, Path(min_length=1, max_length=ID_MAX_CHARS, pattern=PRINTABLE,
                                 description="A CPQ contract's id.")]


class UnknownCpqContractError(DomainError):
    code = "not_found"


def register(app: FastAPI, hub: Hub) -> None:
    """The quote-to-cash status route on `app`, reading `hub`'s records."""

    @app.get("/v1/cpq/contracts/{contract_id}", openapi_extra=_READS)
    def cpq_contract(contract_id: ContractId) -> dict[str, Any]:
        """Each CPQ version of the contract: its order to billing (held, sent, applied,
        mismatch), deliveries, milestones and exceptions."""
        status = cpq_status.contract_status(hub.engine, contract_id)
        if status is None:
            raise UnknownCpqContractError(f"the hub holds no CPQ version of contract "
                                          f"{contract_id!r}")
        return cpq_status.as_json(status)
