"""Tryton's parties as the customer master says: `party.party`, `party.address` and
`party.identifier`.

Rules:
- A customer's party is the one whose `code` is the customer's canonical id, whoever made
  it (a posting makes one on first use, named by the id: `books.Company.party`); its id
  never changes, and the connector's party cache learns it.
- The party's name, its first address (street lines, city, postal code, country and
  subdivision: the customer's billing country and region) and its VAT id are made what the
  master says (a version without a postal address leaves street, city and postal code as
  they are); only what differs is written, so a retry after a lost answer, or the same
  version again, writes nothing.
- The VAT id is the party's first identifier of type `eu_vat` or of no type: `eu_vat` when
  Tryton accepts the number as one, else no type (a generic identifier, as a US EIN is). A
  master without a tax id deactivates it (kept, as Tryton keeps what it held).
- The master's version is noted on the party (an `ir.note`, one a version, written once
  the rest is): an older version than the one noted changes nothing (a replay after a later
  version); the same one again converges, writing only what differs.
- A country or subdivision Tryton does not hold is a `master_data_mismatch` found before any
  write: Tryton ships none (`trytond_import_countries` loads them), and none is guessed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from finsync.connectors.ports import Receipt, Reference
from finsync.connectors.tryton.books import Company
from finsync.connectors.tryton.rpc import TrytonClient
from finsync.domain.errors import ExceptionClass, PermanentError
from finsync.domain.events import CustomerUpserted
from finsync.domain.party import CustomerAccount, PartyOutcome

EU_VAT = "eu_vat"
_PARTY = "party.party"
# The note on a party that says which master version it holds (Tryton has no field for it).
VERSION_NOTE = "finsync: customer master version "
# Tryton's refusal of a code its type does not validate (`party.msg_invalid_code`).
_INVALID_CODE = "is not valid."
_ADDRESS_FIELDS = ["street", "city", "postal_code", "country", "subdivision"]
_ORDER = [("sequence", "ASC"), ("id", "ASC")]


@dataclass(frozen=True, slots=True)
class _Place:
    """Tryton's ids of a customer's billing country and subdivision."""

    country: int
    subdivision: int | None


def _mismatch(message: str) -> PermanentError:
    return PermanentError(message, exception_class=ExceptionClass.MASTER_DATA_MISMATCH)


def _compact(code: str) -> str:
    """A tax id without its separators, as Tryton compares them."""
    return "".join(ch for ch in code if ch.isalnum()).upper()


class PartyBook:
    """Countries and subdivisions read once (they do not change while books are open)."""

    def __init__(self) -> None:
        self._places: dict[tuple[str, str | None], _Place] = {}
        self._lock = threading.Lock()

    def upsert(self, client: TrytonClient, company: Company,
               customer: CustomerAccount) -> Receipt:
        place = self._place(client, customer)
        ctx = company.context
        if customer.id not in company.parties:
            company.known_parties(client, [customer.id])
        party_id = company.parties.get(customer.id)
        held = 0
        if party_id is None:
            party_id = self._create(client, company, customer, place)
            outcome = PartyOutcome.CREATED
        else:
            held = _held_version(client, party_id, ctx)
            if customer.version < held:
                return _receipt(customer, party_id, held, PartyOutcome.STALE)
            changed = self._name(client, party_id, customer, ctx)
            changed = self._address(client, party_id, customer, place, ctx) or changed
            outcome = PartyOutcome.UPDATED if changed else PartyOutcome.UNCHANGED
        taxed = self._tax_id(client, party_id, customer.tax_id, ctx)
        if taxed and outcome is PartyOutcome.UNCHANGED:
            outcome = PartyOutcome.UPDATED
        if customer.version > held:  # last: a version is noted once all of it is written
            client.model("ir.note", "create", [{"resource": f"{_PARTY},{party_id}",
                                                "message": f"{VERSION_NOTE}{customer.version}"}],
                         context=ctx)
        return _receipt(customer, party_id, max(held, customer.version), outcome)

    # -- the party and its address ---------------------------------------------------

    def _create(self, client: TrytonClient, company: Company, customer: CustomerAccount,
                place: _Place) -> int:
        values = {"name": customer.name, "code": customer.id,
                  "addresses": [("create", [_address_values(customer, place)])]}
        try:
            (created,) = client.model(_PARTY, "create", [values],
                                      context=company.context)
        except PermanentError:
            # Another worker made it first (the code is unique): update theirs.
            company.known_parties(client, [customer.id])
            if customer.id not in company.parties:
                raise
            found = company.parties[customer.id]
            self._name(client, found, customer, company.context)
            self._address(client, found, customer, place, company.context)
            return found
        company.remember(customer.id, created)
        return int(created)

    @staticmethod
    def _name(client: TrytonClient, party_id: int, customer: CustomerAccount,
              ctx: dict[str, Any]) -> bool:
        (row,) = client.model("party.party", "read", [party_id], ["name"], context=ctx)
        if row["name"] == customer.name:
            return False
        client.model("party.party", "write", [party_id], {"name": customer.name}, context=ctx)
        return True

    @staticmethod
    def _address(client: TrytonClient, party_id: int, customer: CustomerAccount,
                 place: _Place, ctx: dict[str, Any]) -> bool:
        wanted = _address_values(customer, place)
        rows = client.model("party.address", "search_read", [("party", "=", party_id)],
                            0, 1, _ORDER, _ADDRESS_FIELDS, context=ctx)
        if not rows:
            client.model("party.address", "create", [{"party": party_id, **wanted}],
                         context=ctx)
            return True
        held = rows[0]
        changes = {k: v for k, v in wanted.items() if (held.get(k) or None) != (v or None)}
        if not changes:
            return False
        client.model("party.address", "write", [held["id"]], changes, context=ctx)
        return True

    # -- the VAT id ------------------------------------------------------------------

    @staticmethod
    def _tax_id(client: TrytonClient, party_id: int, tax_id: str | None,
                ctx: dict[str, Any]) -> bool:
        rows = client.model("party.identifier", "search_read",
                            [("party", "=", party_id),
                             ["OR", ("type", "=", EU_VAT), ("type", "=", None)]],
                            0, 1, _ORDER, ["code", "type"], context=ctx)
        held = rows[0] if rows else None
        if tax_id is None:
            if held is None:
                return False
            client.model("party.identifier", "write", [held["id"]], {"active": False},
                         context=ctx)
            return True
        if held is not None and _compact(held["code"]) == _compact(tax_id):
            return False

        def write(kind: str | None) -> None:
            values = {"code": tax_id, "type": kind}
            if held is None:
                client.model("party.identifier", "create", [{"party": party_id, **values}],
                             context=ctx)
            else:
                client.model("party.identifier", "write", [held["id"]], values, context=ctx)

        try:
            write(EU_VAT)
        except PermanentError as exc:
            if _INVALID_CODE not in str(exc):
                raise
            write(None)  # not a valid EU VAT number: kept as a generic identifier
        return True

    # -- countries -------------------------------------------------------------------

    def _place(self, client: TrytonClient, customer: CustomerAccount) -> _Place:
        key = (customer.billing_country, customer.billing_region)
        with self._lock:
            known = self._places.get(key)
        if known is not None:
            return known
        country = _one(client, "country.country", customer.billing_country)
        if country is None:
            raise _mismatch(f"Tryton has no country {customer.billing_country!r} (load "
                            "Tryton's countries: trytond_import_countries)")
        subdivision = None
        region = customer.billing_region
        if region is not None:
            code = region if "-" in region else f"{customer.billing_country}-{region}"
            subdivision = _one(client, "country.subdivision", code)
            if subdivision is None:
                raise _mismatch(f"Tryton has no subdivision {code!r} (load Tryton's "
                                "subdivisions: trytond_import_countries)")
        found = _Place(country, subdivision)
        with self._lock:
            self._places[key] = found
        return found


def _held_version(client: TrytonClient, party_id: int, ctx: dict[str, Any]) -> int:
    """The latest master version noted on the party (0: none yet)."""
    rows = client.model("ir.note", "search_read",
                        [("resource", "=", f"{_PARTY},{party_id}"),
                         ("message", "like", f"{VERSION_NOTE}%")],
                        0, None, None, ["message"], context=ctx)
    noted = [str(r["message"]).removeprefix(VERSION_NOTE) for r in rows]
    return max((int(n) for n in noted if n.isdigit()), default=0)


def _receipt(customer: CustomerAccount, party_id: int, version: int,
             outcome: PartyOutcome) -> Receipt:
    external = str(party_id)
    return Receipt(external, (Reference(customer.id, CustomerUpserted.aggregate_type,
                                        external),),
                   {"version": str(version), "outcome": outcome.value})


def _one(client: TrytonClient, model: str, code: str) -> int | None:
    ids: list[int] = client.model(model, "search", [("code", "=", code)], 0, 1, None)
    return ids[0] if ids else None


def _address_values(customer: CustomerAccount, place: _Place) -> dict[str, Any]:
    values: dict[str, Any] = {"country": place.country, "subdivision": place.subdivision}
    address = customer.address
    if address is not None:
        values.update({"street": "\n".join(address.street), "city": address.city,
                       "postal_code": address.postal_code})
    return values
