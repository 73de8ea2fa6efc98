"""The party-port contract, run against the embedded ledger on SQLite and PostgreSQL; and
what the embedded ledger adds: the master's version decides, a key finds its receipt."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from finsync.connectors.embedded.ledger import EmbeddedLedger
from finsync.systems.ledger.service import LedgerService
from tests.contract.party_port import (
    PartyHarness,
    PartyPortContract,
    PartyView,
    ctx,
    customer,
    view,
)
from tests.ledgerkit import ledger_service


@pytest.fixture
def service(engine: Engine) -> LedgerService:
    return ledger_service(engine)


@pytest.fixture
def party_harness(service: LedgerService) -> PartyHarness:
    def read(customer_id: str) -> PartyView | None:
        party = service.party(customer_id)
        if party is None:
            return None
        address = party.address
        return PartyView(party.name, None if address is None else address.street,
                         None if address is None else address.city,
                         None if address is None else address.postal_code,
                         party.country, party.region, party.tax_id)

    return PartyHarness(EmbeddedLedger("ledger", service), read)


class TestEmbeddedLedgerParties(PartyPortContract):
    pass


def test_an_older_version_after_a_later_one_changes_nothing(
        party_harness: PartyHarness) -> None:
    port = party_harness.port
    port.upsert_party(customer(3, name="Globex v3"), ctx("k3"))
    late = port.upsert_party(customer(2, name="Globex v2"), ctx("k2"))
    assert late.detail == {"version": "3", "outcome": "stale"}
    assert party_harness.read("cus_globex") == view(customer(3, name="Globex v3"))


def test_a_delivery_key_finds_the_receipt_of_the_version_it_wrote(
        party_harness: PartyHarness) -> None:
    port = EmbeddedLedger("ledger", ledger_service_of(party_harness))
    written = port.upsert_party(customer(), ctx("k1"))
    found = port.find_receipt("k1")
    assert found is not None and found.external_id == written.external_id == "cus_globex"
    port.upsert_party(customer(2, name="Globex International"), ctx("k2"))
    assert port.find_receipt("k1") is None  # the party holds version 2 now: k2's write
    assert port.find_receipt("nobody") is None


def ledger_service_of(harness: PartyHarness) -> LedgerService:
    port = harness.port
    assert isinstance(port, EmbeddedLedger)
    return port._service
