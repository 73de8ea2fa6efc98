"""The ownership echo rule (`hub.ownership`), on SQLite and PostgreSQL, through the
processor's batch path (the owner's version written in the same batch) and alone; and the
ledger target's customer route to the embedded ledger's parties, through the ERP posting
buffer as bootstrap composes every ledger.

The CRM owns the customer domain here; billing keeps the CRM's customer and sends it back.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from finsync.connectors.embedded.ledger import EmbeddedLedger
from finsync.domain import codec
from finsync.domain.errors import ExceptionClass
from finsync.domain.events import BusinessDomain, CustomerUpserted, EventType, InvoiceIssued
from finsync.domain.party import CustomerAccount, PostalAddress
from finsync.domain.refs import ExternalRefs
from finsync.hub.buffer import BufferPolicy
from finsync.hub.mapping import CanonicalMapper, MapperRegistry
from finsync.hub.milestone import Milestone
from finsync.hub.service import Hub
from finsync.hub.settings import HubSettings
from finsync.hub.target import ledger_target
from finsync.storage import cross_ref, milestone_log, outbox
from finsync.storage.db import transaction
from finsync.storage.schema import duplicates
from finsync.systems.ledger.service import LedgerService
from tests.bufferkit import buffered_hub, event, statuses
from tests.builders import envelope
from tests.hubkit import OWNERSHIP, Clock, ingest, settings
from tests.ledgerkit import invoice, ledger_service

GLOBEX = CustomerAccount("cus_globex", "Globex Corporation", "le_us", "USD", "US", 1,
                         billing_region="NY", tax_id="US-EIN-12-3456789",
                         address=PostalAddress(("200 Park Avenue",), "New York", "10166"))


def _hub(engine: Engine, tmp_path: Path) -> tuple[Hub, LedgerService]:
    service = ledger_service(engine)
    base = settings({"customer.upserted": ("ledger",)})
    chosen = HubSettings({**OWNERSHIP, BusinessDomain.CUSTOMER: "crm"},
                         {EventType.CUSTOMER_UPSERTED: ("ledger",)}, base.delivery,
                         gap_wait_s=base.gap_wait_s, intake_batch_size=base.intake_batch_size)
    port = EmbeddedLedger("ledger", service)
    hub = Hub(engine, chosen, MapperRegistry({"canonical": CanonicalMapper()}),
              {"ledger": ledger_target(port)}, Clock(), "test-worker",
              ledgers={"ledger": (port, BufferPolicy())})
    return hub, service


def _sent(account: CustomerAccount, source: str, sid: str) -> bytes:
    payload: dict[str, Any] = codec.encode_event(CustomerUpserted(account))
    return json.dumps(envelope("customer.upserted", sid,
                               ("customer_account", account.id, account.version), payload,
                               correlation_id=f"corr-{sid}", source=source)).encode()


def _send(hub: Hub, bodies: list[bytes], batched: bool) -> None:
    """All in one batch of the processor, or each raw event alone."""
    if batched:
        ingest(hub, bodies)
        hub.run_until_idle()
        return
    for body in bodies:
        ingest(hub, [body])
        hub.run_until_idle()


def _reasons(engine: Engine) -> list[str]:
    with transaction(engine) as conn:
        return [str(r) for (r,) in conn.execute(select(duplicates.c.reason))]


# Billing's copy: its own version counter and its own id in the refs; master fields as the
# CRM said.
ECHO = replace(GLOBEX, version=7, refs=ExternalRefs.of({"billing": "cus_B12"}))


@pytest.mark.parametrize("batched", [True, False], ids=["one_batch", "alone"])
def test_an_echo_of_the_owners_version_is_a_duplicate_and_goes_nowhere(
        engine: Engine, tmp_path: Path, batched: bool) -> None:
    hub, service = _hub(engine, tmp_path)
    _send(hub, [_sent(GLOBEX, "crm", "crm-1"), _sent(ECHO, "billing", "bil-1")], batched)
    assert hub.exceptions() == []
    status = hub.status()
    assert status["events"] == {"accepted": 1}
    assert status["duplicates_ignored"] == 1
    assert status["deliveries"] == {"done": 1}  # the CRM's version, to the ledger, once
    assert _reasons(engine) == ["echo"]
    party = service.party("cus_globex")
    assert party is not None and (party.name, party.version) == ("Globex Corporation", 1)


@pytest.mark.parametrize("batched", [True, False], ids=["one_batch", "alone"])
def test_a_non_owner_change_opens_a_violation_naming_the_fields_never_their_values(
        engine: Engine, tmp_path: Path, batched: bool) -> None:
    hub, service = _hub(engine, tmp_path)
    edited = replace(ECHO, name="Globex Renamed In Billing", billing_country="CA",
                     address=PostalAddress(("200 Park Avenue",), "Toronto", "10166"))
    _send(hub, [_sent(GLOBEX, "crm", "crm-1"), _sent(edited, "billing", "bil-1")], batched)
    (error,) = hub.exception_listing(can_read_pii=True).rows
    assert error["class"] == ExceptionClass.OWNERSHIP_VIOLATION
    assert error["summary"] == (
        "billing sent customer.upserted, but crm owns that domain: cus_globex differs from "
        "crm's version 1 in address.city, billing_country, name")
    assert error["detail"] == "\n".join([
        'customer.address.city: [redacted: address] -> [redacted: address]',
        'customer.billing_country: "US" -> "CA"',
        'customer.name: [redacted: name] -> [redacted: name]'])
    for value in ("Toronto", "New York", "Globex"):
        assert value not in error["summary"] + error["detail"]
    status = hub.status()
    assert status["events"] == {"accepted": 1, "rejected": 1}
    assert status["deliveries"] == {"done": 1}  # nothing of billing's routed
    party = service.party("cus_globex")
    assert party is not None and party.name == "Globex Corporation"


def test_the_echo_is_judged_against_the_owners_latest_version(
        engine: Engine, tmp_path: Path) -> None:
    hub, _ = _hub(engine, tmp_path)
    renamed = replace(GLOBEX, version=2, name="Globex International")
    stale_echo = replace(ECHO, version=8)  # billing still says version 1's name
    fresh_echo = replace(renamed, version=9, refs=ECHO.refs)
    _send(hub, [_sent(GLOBEX, "crm", "crm-1"), _sent(renamed, "crm", "crm-2"),
                _sent(stale_echo, "billing", "bil-1"), _sent(fresh_echo, "billing", "bil-2")],
          batched=True)
    (error,) = hub.exceptions()
    assert error["class"] == ExceptionClass.OWNERSHIP_VIOLATION
    assert error["summary"].endswith("differs from crm's version 2 in name")
    assert _reasons(engine) == ["echo"]


def test_a_non_owner_before_any_owner_version_is_a_violation(
        engine: Engine, tmp_path: Path) -> None:
    hub, service = _hub(engine, tmp_path)
    _send(hub, [_sent(ECHO, "billing", "bil-1")], batched=True)
    (error,) = hub.exceptions()
    assert error["class"] == ExceptionClass.OWNERSHIP_VIOLATION
    summary = error["summary"]
    assert "crm owns that domain (it has sent no version of cus_globex yet)" in summary
    assert hub.status()["deliveries"] == {}
    assert service.party("cus_globex") is None


def test_the_owners_versions_reach_the_ledgers_party_with_a_milestone_and_one_reference(
        engine: Engine, tmp_path: Path) -> None:
    hub, service = _hub(engine, tmp_path)
    moved = replace(GLOBEX, version=2, name="Globex International",
                    address=PostalAddress(("1 Infinite Loop",), "Cupertino", "95014"),
                    billing_region="CA")
    _send(hub, [_sent(GLOBEX, "crm", "crm-1"), _sent(moved, "crm", "crm-2")], batched=True)
    assert hub.status()["deliveries"] == {"done": 2}
    party = service.party("cus_globex")
    assert party is not None
    assert (party.name, party.region, party.version) == ("Globex International", "CA", 2)
    assert party.address == moved.address
    with transaction(engine) as conn:
        # Immutable: the second version's receipt named the same party, nothing new.
        assert [r for r in cross_ref.all_rows(conn) if r[2] == "ledger"] == [
            ("cus_globex", "customer_account", "ledger", "cus_globex")]
        reached = milestone_log.timeline(conn, "corr-crm-2")
    assert [(m["name"], m["target"]) for m in reached] == [(Milestone.PARTY_UPSERTED, "ledger")]


def test_a_party_takes_one_call_of_the_erps_budget_after_the_postings(
        engine: Engine) -> None:
    """Budget 1 call a minute: the round's one call posts the invoice; the party (owned by
    billing here, the shipped default) is given back untried, and goes the next minute."""
    clock = Clock()
    port = EmbeddedLedger("ledger", ledger_service(engine))
    hub = buffered_hub(engine, {"ledger": (port, BufferPolicy(calls_per_minute=1,
                                                              wait_max_s=0))}, clock,
                       {"invoice.issued": ("ledger",), "customer.upserted": ("ledger",)})
    billing_copy = replace(GLOBEX, id="cus_1")
    ingest(hub, [event(InvoiceIssued(invoice("inv_1", ["100.00"]))),
                 _sent(billing_copy, "billing", "bil-1")])
    hub.run_until_idle()
    assert statuses(hub) == {"done": 1, "pending": 1}
    with transaction(engine) as conn:
        waiting = [r for r in outbox.all_rows(conn) if r["status"] == "pending"]
    assert [r["attempts"] for r in waiting] == [0]  # untried: no attempt spent
    assert port.find_receipt(waiting[0]["delivery_key"]) is None
    clock.advance(61)
    hub.run_until_idle()
    assert statuses(hub) == {"done": 2}
    assert port.find_receipt(waiting[0]["delivery_key"]) is not None
