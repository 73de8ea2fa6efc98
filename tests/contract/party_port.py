"""The party-port contract: what every ERP customer master must do, whoever implements it.

A test module runs it by defining a `party_harness` fixture (see `PartyHarness`): the
embedded ledger in test_party_port.py (SQLite and PostgreSQL), Tryton in
test_tryton_party_port.py (a real trytond).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from finsync.connectors.ports import DeliveryContext, PartyPort, Reference
from finsync.domain.party import CustomerAccount, PostalAddress


@dataclass(frozen=True, slots=True)
class PartyView:
    """A party as the ERP holds it, in the master's terms."""

    name: str
    street: tuple[str, ...] | None
    city: str | None
    postal_code: str | None
    country: str
    region: str | None
    tax_id: str | None


@dataclass
class PartyHarness:
    port: PartyPort
    read: Callable[[str], PartyView | None]  # by canonical customer id


def customer(version: int = 1, **changes: object) -> CustomerAccount:
    """Globex's master record, version 1: in New York, with no tax id."""
    base = CustomerAccount("cus_globex", "Globex Corporation", "le_us", "USD", "US", 1,
                           billing_region="NY",
                           address=PostalAddress(("200 Park Avenue", "Floor 12"), "New York",
                                                 "10166"))
    return replace(base, version=version, **changes)  # type: ignore[arg-type]


def ctx(key: str) -> DeliveryContext:
    return DeliveryContext(key, f"evt-{key}", "corr-globex")


def view(account: CustomerAccount) -> PartyView:
    address = account.address
    return PartyView(account.name, None if address is None else address.street,
                     None if address is None else address.city,
                     None if address is None else address.postal_code,
                     account.billing_country, account.billing_region, account.tax_id)


class PartyPortContract:
    def test_a_new_customer_becomes_a_party_named_in_the_receipt(
            self, party_harness: PartyHarness) -> None:
        receipt = party_harness.port.upsert_party(customer(), ctx("k1"))
        assert receipt.external_id
        assert receipt.references == (Reference("cus_globex", "customer_account",
                                                receipt.external_id),)
        assert party_harness.read("cus_globex") == view(customer())

    def test_the_same_delivery_again_answers_the_same_party_and_changes_nothing(
            self, party_harness: PartyHarness) -> None:
        first = party_harness.port.upsert_party(customer(), ctx("k1"))
        again = party_harness.port.upsert_party(customer(), ctx("k1"))
        assert again.external_id == first.external_id
        assert again.references == first.references
        assert again.detail["outcome"] == "unchanged"
        assert party_harness.read("cus_globex") == view(customer())

    def test_a_later_version_renames_moves_and_gives_a_tax_id_to_the_same_party(
            self, party_harness: PartyHarness) -> None:
        first = party_harness.port.upsert_party(customer(), ctx("k1"))
        moved = customer(2, name="Globex International", billing_country="DE",
                         billing_region=None, tax_id="DE136695976",
                         address=PostalAddress(("Friedrichstraße 68",), "Berlin", "10117"))
        second = party_harness.port.upsert_party(moved, ctx("k2"))
        assert second.external_id == first.external_id  # the ERP's id never changes
        assert second.detail["outcome"] == "updated"
        assert party_harness.read("cus_globex") == view(moved)

    def test_a_version_without_a_tax_id_takes_the_tax_id_away(
            self, party_harness: PartyHarness) -> None:
        party_harness.port.upsert_party(customer(tax_id="DE136695976"), ctx("k1"))
        party_harness.port.upsert_party(customer(2), ctx("k2"))
        held = party_harness.read("cus_globex")
        assert held is not None and held.tax_id is None

    def test_a_customer_without_an_address_keeps_its_country_and_region(
            self, party_harness: PartyHarness) -> None:
        bare = customer(address=None, billing_region="CA")
        party_harness.port.upsert_party(bare, ctx("k1"))
        held = party_harness.read("cus_globex")
        assert held is not None
        assert (held.name, held.country, held.region) == ("Globex Corporation", "US", "CA")
        assert not held.street and not held.city and not held.postal_code

    def test_an_older_version_after_a_later_one_changes_nothing(
            self, party_harness: PartyHarness) -> None:
        port = party_harness.port
        port.upsert_party(customer(3, name="Globex v3"), ctx("k3"))
        late = port.upsert_party(customer(2, name="Globex v2", tax_id="DE136695976"),
                                 ctx("k2"))
        assert late.detail == {"version": "3", "outcome": "stale"}
        assert party_harness.read("cus_globex") == view(customer(3, name="Globex v3"))
        again = port.upsert_party(customer(4, name="Globex v4"), ctx("k4"))
        assert again.detail == {"version": "4", "outcome": "updated"}

    def test_a_version_without_a_postal_address_keeps_the_one_held(
            self, party_harness: PartyHarness) -> None:
        party_harness.port.upsert_party(customer(), ctx("k1"))
        party_harness.port.upsert_party(customer(2, name="Globex Inc.", address=None,
                                                 billing_region="CA"), ctx("k2"))
        assert party_harness.read("cus_globex") == view(customer(
            2, name="Globex Inc.", billing_region="CA"))
