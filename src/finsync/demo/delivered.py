"""The postings the hub delivered to the ledgers, as the outbox recorded them.

The demo checks its correlation chains against this. It reads the hub's outbox itself only
until the hub's service API answers the question (`Hub.delivered_postings`, asked for).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from finsync.hub.service import Hub
from finsync.storage import jsonutil, outbox
from finsync.storage.db import reading
from finsync.storage.status import DeliveryStatus


@dataclass(frozen=True, slots=True)
class DeliveredPosting:
    correlation_id: str
    entry_id: str  # the ledger's id for the journal entry (the receipt's external id)


def delivered_postings(hub: Hub, ledgers: Collection[str]) -> list[DeliveredPosting]:
    """Every delivery done to one of `ledgers`, with the journal entry it produced."""
    with reading(hub.engine) as conn:
        done = [r for r in outbox.all_rows(conn)
                if r["status"] == DeliveryStatus.DONE and r["target"] in ledgers]
    return [DeliveredPosting(r["correlation_id"], jsonutil.loads(r["result"])["external_id"])
            for r in done]
