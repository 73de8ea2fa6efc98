"""The party-port contract, run against the embedded ledger on SQLite and PostgreSQL; and
what the embedded ledger adds: a delivery key finds its receipt, a party reads back as
written."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from sqlalchemy import Engine

from finsync.connectors.embedded.ledger import EmbeddedLedger
from finsync.domain.party import CustomerAccount, PostalAddress
from finsync.systems.ledger import tables
from finsync.systems.ledger.parties import Party
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
from tests.strategies import customers


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


# PostgreSQL's text holds no NUL (and the hub's limits refuse one before it gets here).
_STORABLE = customers().filter(lambda c: "\\x00" not in repr(c))


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(account=_STORABLE)
def test_a_party_reads_back_as_the_master_wrote_it(service: LedgerService,
                                                    account: CustomerAccount) -> None:
    with service.engine.begin() as conn:
        conn.execute(tables.parties.delete())
    service.upsert_party(account, "k1")
    assert service.party(account.id) == Party(
        account.id, account.legal_entity, account.name, account.currency,
        account.billing_country, account.billing_region, account.tax_id, account.address,
        account.version)


def test_values_as_long_as_the_hubs_limits_allow_are_kept_whole(
        party_harness: PartyHarness) -> None:
    """Ids up to 255 characters, texts up to 4000 (`[limits.default]`): stored whole."""
    long_text = "x" * 4000
    account = customer(id="c" * 255, name=long_text, tax_id=long_text, billing_region="R" * 255,
                       billing_country="C" * 255, legal_entity="e" * 255,
                       address=PostalAddress((long_text, long_text), long_text, long_text))
    party_harness.port.upsert_party(account, ctx("k" * 255))
    assert party_harness.read(account.id) == view(account)
