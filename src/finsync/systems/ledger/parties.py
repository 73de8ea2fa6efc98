"""The ledger's parties: the customer master as the ERP keeps it.

Rules:
- One party a customer, under the customer's canonical id (the id the ledger's receivables
  already carry), with the master's fields: name, legal entity, currency, country and
  region, tax id and postal address, and the master's version.
- A version later than the one held replaces every field, except the postal address when
  the version has none (a master that sends no address leaves the one held); the same
  version or an older one changes nothing (a redelivery, or a replay of an older version
  after a newer one).
- The row keeps the delivery key of the write that made it: a redelivery of that key is
  answered from it (`find`), as a posting's key is from its entry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from finsync.domain.party import CustomerAccount, PartyOutcome, PostalAddress
from finsync.systems.ledger import tables as t

_ADDRESS_COLUMNS = frozenset({"street", "city", "postal_code"})


@dataclass(frozen=True, slots=True)
class PartyWritten:
    party_id: str
    version: int  # the version the ledger holds after the call
    outcome: PartyOutcome


@dataclass(frozen=True, slots=True)
class Party:
    """A party as the ledger holds it."""

    id: str
    legal_entity: str
    name: str
    currency: str
    country: str
    region: str | None
    tax_id: str | None
    address: PostalAddress | None
    version: int


def upsert(conn: Connection, customer: CustomerAccount, key: str, at: datetime) -> PartyWritten:
    held = conn.execute(select(t.parties.c.version).where(t.parties.c.id == customer.id)
                        ).scalar_one_or_none()
    row = _row(customer, key, at)
    if held is None:
        conn.execute(insert(t.parties), row)
        return PartyWritten(customer.id, customer.version, PartyOutcome.CREATED)
    if customer.version < held:
        return PartyWritten(customer.id, held, PartyOutcome.STALE)
    if customer.version == held:
        return PartyWritten(customer.id, held, PartyOutcome.UNCHANGED)
    if customer.address is None:  # a master that sends no address leaves it as it is
        row = {k: v for k, v in row.items() if k not in _ADDRESS_COLUMNS}
    conn.execute(update(t.parties).where(t.parties.c.id == customer.id).values(row))
    return PartyWritten(customer.id, customer.version, PartyOutcome.UPDATED)


def _row(customer: CustomerAccount, key: str, at: datetime) -> dict[str, Any]:
    address = customer.address
    return {
        "id": customer.id, "legal_entity": customer.legal_entity, "name": customer.name,
        "currency": customer.currency, "country": customer.billing_country,
        "region": customer.billing_region, "tax_id": customer.tax_id,
        "street": None if address is None else json.dumps(list(address.street)),
        "city": None if address is None else address.city,
        "postal_code": None if address is None else address.postal_code,
        "version": customer.version, "delivery_key": key, "updated_at": at,
    }


def find(conn: Connection, key: str) -> PartyWritten | None:
    """The write a delivery key made, if the party still holds it."""
    row = conn.execute(select(t.parties.c.id, t.parties.c.version)
                       .where(t.parties.c.delivery_key == key)).first()
    return None if row is None else PartyWritten(str(row.id), int(row.version),
                                                 PartyOutcome.UNCHANGED)


def get(conn: Connection, party_id: str) -> Party | None:
    row = conn.execute(select(t.parties).where(t.parties.c.id == party_id)).mappings().first()
    if row is None:
        return None
    address = None
    if row["street"] is not None or row["city"] is not None:
        address = PostalAddress(tuple(json.loads(row["street"] or "[]")), row["city"] or "",
                                row["postal_code"])
    return Party(row["id"], row["legal_entity"], row["name"], row["currency"], row["country"],
                 row["region"], row["tax_id"], address, int(row["version"]))


def names(conn: Connection, party_ids: list[str]) -> dict[str, str]:
    """The names of those of `party_ids` the ledger holds a party for."""
    if not party_ids:
        return {}
    rows = conn.execute(select(t.parties.c.id, t.parties.c.name)
                        .where(t.parties.c.id.in_(sorted(set(party_ids)))))
    return {str(i): str(n) for i, n in rows}
