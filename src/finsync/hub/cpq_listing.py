"""The CPQ contracts the hub holds: what `finsync cpq status` lists without a contract.

Rules:
- A contract is listed once the hub holds an event of it in any status (a version parked
  for an earlier one, or rejected as a changed copy, counts): its status says which.
- Pages, in contract id order, of at most `PAGE_MAX` ids: the listing stays bounded
  however many contracts CPQ sent; `after` is the last id of the previous page.
"""

from __future__ import annotations

from sqlalchemy import Engine

from finsync.domain.events import CommercialContractApproved
from finsync.hub.cpq_status import ContractStatus, contract_status
from finsync.storage import event_log
from finsync.storage.db import reading

PAGE_MAX = 200


def contract_ids(engine: Engine, *, after: str | None = None, limit: int = 50) -> list[str]:
    if not 0 < limit <= PAGE_MAX:
        raise ValueError(f"limit must be in 1..{PAGE_MAX} (PAGE_MAX), not {limit}")
    with reading(engine) as conn:
        return event_log.aggregate_ids(conn, CommercialContractApproved.aggregate_type,
                                       after, limit)


def contract_statuses(engine: Engine, *, after: str | None = None,
                      limit: int = 50) -> list[ContractStatus]:
    """The status of each contract of a page (`cpq_status.contract_status`)."""
    found = (contract_status(engine, contract_id)
             for contract_id in contract_ids(engine, after=after, limit=limit))
    return [status for status in found if status is not None]
