"""The party-port contract against a real trytond (a clone of the bootstrapped books per
test), with the countries the customers live in loaded as `trytond_import_countries`
would (Tryton ships none)."""

from __future__ import annotations

from typing import Any

import pytest

from finsync.connectors.tryton.rpc import TrytonClient
from tests.contract.party_port import PartyHarness, PartyPortContract, PartyView
from tests.external.tryton_fixtures import TrytonBooks

COUNTRIES = {"US": ("United States", ("NY", "CA")), "DE": ("Germany", ())}


def load_countries(client: TrytonClient) -> None:
    for code, (name, regions) in COUNTRIES.items():
        (country,) = client.model("country.country", "create", [{"name": name, "code": code}])
        if regions:
            client.model("country.subdivision", "create", [
                {"country": country, "code": f"{code}-{r}", "name": r, "type": "state"}
                for r in regions])


def read_party(client: TrytonClient, customer_id: str) -> PartyView | None:
    found = client.model("party.party", "search_read", [("code", "=", customer_id)],
                         0, None, None, ["name"])
    if not found:
        return None
    (party,) = found
    (address,) = client.model("party.address", "search_read", [("party", "=", party["id"])],
                              0, 1, [("sequence", "ASC"), ("id", "ASC")],
                              ["street", "city", "postal_code", "country.code",
                               "subdivision.code"])
    identifiers = client.model("party.identifier", "search_read",
                               [("party", "=", party["id"]),
                                ["OR", ("type", "=", "eu_vat"), ("type", "=", None)]],
                               0, 1, [("sequence", "ASC"), ("id", "ASC")], ["code"])
    country = _code(address.get("country."))
    region = _code(address.get("subdivision."))
    return PartyView(party["name"],
                     tuple(address["street"].split("\n")) if address["street"] else None,
                     address["city"] or None, address["postal_code"] or None,
                     country or "", None if region is None else region.split("-", 1)[1],
                     identifiers[0]["code"] if identifiers else None)


def _code(related: Any) -> str | None:
    return None if not related else str(related["code"])


@pytest.fixture
def party_harness(tryton_books: TrytonBooks) -> PartyHarness:
    client = tryton_books.client()
    load_countries(client)
    return PartyHarness(tryton_books.ledger(), lambda cid: read_party(client, cid))


class TestTrytonParties(PartyPortContract):
    pass
