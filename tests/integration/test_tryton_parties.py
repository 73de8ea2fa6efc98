"""Tryton's parties against a real trytond, beyond the port's contract: the VAT id's type,
one party per customer whoever made it first (a posting or the master), a lost answer,
a country Tryton lacks; and a renamed customer reaching Tryton through the hub as
bootstrap composes it (the CRM owning customers, billing's echo counted)."""

from __future__ import annotations

import json
import tomllib
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from finsync.bootstrap import build_finance
from finsync.config import DEFAULT_CONFIG, SystemSection, parse_config
from finsync.connectors.tryton.ledger import TrytonLedger
from finsync.connectors.tryton.rpc import TrytonClient
from finsync.demo.clock import SimClock
from finsync.domain import codec
from finsync.domain.errors import ExceptionClass, PermanentError, TransientError
from finsync.domain.events import BusinessDomain, CustomerUpserted, EventType
from finsync.domain.party import CustomerAccount
from finsync.domain.refs import ExternalRefs
from finsync.storage import cross_ref
from finsync.storage.db import transaction
from finsync.storage.raw_log import RawIn
from tests.builders import envelope
from tests.contract.party_port import ctx, customer
from tests.contract.test_tryton_party_port import load_countries
from tests.external.tryton import ADMIN_PASSWORD
from tests.external.tryton_fixtures import COMPANY, ENTITIES, TrytonBooks
from tests.integration.test_tryton import LosingClient
from tests.ledgerkit import invoice


def _identifiers(client: TrytonClient) -> list[tuple[str, str | None, bool]]:
    rows = client.model("party.identifier", "search_read",
                        [("active", "in", [True, False])], 0, None, [("id", "ASC")],
                        ["code", "type", "active"])
    return [(r["code"], r["type"], r["active"]) for r in rows]


def _parties(client: TrytonClient, code: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = client.model("party.party", "search_read",
                                              [("code", "=", code)], 0, None, None, ["name"])
    return rows


@pytest.fixture
def client(tryton_books: TrytonBooks) -> TrytonClient:
    made = tryton_books.client()
    load_countries(made)
    return made


def test_a_valid_eu_vat_number_is_typed_eu_vat_and_another_tax_id_is_generic(
        tryton_books: TrytonBooks, client: TrytonClient) -> None:
    ledger = tryton_books.ledger()
    ledger.upsert_party(customer(tax_id="DE136695976", billing_country="DE",
                                 billing_region=None), ctx("k1"))
    assert _identifiers(client) == [("DE136695976", "eu_vat", True)]
    # A US employer id is no EU VAT number: Tryton refuses it as one, so it is kept untyped,
    # in the same identifier.
    ledger.upsert_party(customer(2, tax_id="12-3456789"), ctx("k2"))
    assert _identifiers(client) == [("12-3456789", None, True)]
    ledger.upsert_party(customer(3), ctx("k3"))
    assert _identifiers(client) == [("12-3456789", None, False)]  # deactivated, kept


def test_a_party_a_posting_made_first_is_the_customers_party(
        tryton_books: TrytonBooks, client: TrytonClient) -> None:
    ledger = tryton_books.ledger()
    ledger.post_invoice(invoice("inv_1", ["100.00"], customer="cus_globex"), ctx("p1"))
    (made,) = _parties(client, "cus_globex")
    assert made["name"] == "cus_globex"  # named by its id until the master speaks
    receipt = tryton_books.ledger().upsert_party(customer(), ctx("k1"))  # a fresh cache
    assert receipt.external_id == str(made["id"])
    assert receipt.detail["outcome"] == "updated"
    assert [p["name"] for p in _parties(client, "cus_globex")] == ["Globex Corporation"]


def test_a_posting_after_the_master_books_on_the_masters_party(
        tryton_books: TrytonBooks, client: TrytonClient) -> None:
    ledger = tryton_books.ledger()
    receipt = ledger.upsert_party(customer(), ctx("k1"))
    ledger.post_invoice(invoice("inv_1", ["100.00"], customer="cus_globex"), ctx("p1"))
    lines = client.model("account.move.line", "search_read", [("party", "!=", None)],
                         0, None, None, ["party"])
    assert {str(line["party"]) for line in lines} == {receipt.external_id}
    assert len(_parties(client, "cus_globex")) == 1


@pytest.mark.parametrize("lost", ["model.party.party.create", "model.party.identifier.create"])
def test_a_retry_after_a_lost_answer_leaves_one_party_as_the_master_says(
        tryton_books: TrytonBooks, client: TrytonClient, lost: str) -> None:
    def connect() -> TrytonClient:
        made = LosingClient(tryton_books.site.server.url, tryton_books.database, "admin",
                             ADMIN_PASSWORD)
        made.lose = lost
        return made

    ledger = tryton_books.own(TrytonLedger("tryton", connect, ENTITIES))
    wanted = customer(tax_id="DE136695976")
    with pytest.raises(TransientError):
        ledger.upsert_party(wanted, ctx("k1"))
    retried = ledger.upsert_party(wanted, ctx("k1"))
    (party,) = _parties(client, "cus_globex")
    assert retried.external_id == str(party["id"])
    assert _identifiers(client) == [("DE136695976", "eu_vat", True)]


def test_a_country_tryton_lacks_is_a_master_data_mismatch_before_any_write(
        tryton_books: TrytonBooks, client: TrytonClient) -> None:
    with pytest.raises(PermanentError) as caught:
        tryton_books.ledger().upsert_party(customer(billing_country="FR", billing_region=None),
                                           ctx("k1"))
    assert caught.value.exception_class is ExceptionClass.MASTER_DATA_MISMATCH
    assert "Tryton has no country 'FR'" in str(caught.value)
    assert _parties(client, "cus_globex") == []


def _upserted(account: CustomerAccount, source: str, sid: str) -> bytes:
    payload: dict[str, Any] = codec.encode_event(CustomerUpserted(account))
    return json.dumps(envelope("customer.upserted", sid,
                               ("customer_account", account.id, account.version), payload,
                               correlation_id=f"corr-{sid}", source=source)).encode()


def test_a_renamed_customer_reaches_trytons_party_through_the_hub(
        tryton_books: TrytonBooks, client: TrytonClient, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINSYNC_DATABASE_URL", f"sqlite:///{tmp_path / 'hub.db'}")
    monkeypatch.setenv("FINSYNC_TRYTON_PASSWORD", ADMIN_PASSWORD)
    config = parse_config(tomllib.loads(DEFAULT_CONFIG.read_text()), tmp_path)
    systems = {**config.systems, "ledger": SystemSection(
        role="ledger", connector="tryton", url=tryton_books.site.server.url,
        database=tryton_books.database, companies={"le_us": COMPANY})}
    config = config.model_copy(update={
        "systems": systems, "pumps": {},
        "ledger": config.ledger.model_copy(update={"entities": config.ledger.entities[:1]}),
        "ownership": {**config.ownership, BusinessDomain.CUSTOMER: "crm"},
        "routes": {EventType.CUSTOMER_UPSERTED.value: ["ledger"]}})
    finance = build_finance(config, clock=SimClock(datetime(2026, 1, 2, tzinfo=UTC)))
    try:
        first = customer()
        renamed = customer(2, name="Globex International", tax_id="DE136695976")
        echo = replace(renamed, version=5, refs=ExternalRefs.of({"billing": "cus_B12"}))
        finance.hub.intake.store([RawIn("canonical", body, {}) for body in (
            _upserted(first, "crm", "crm-1"), _upserted(renamed, "crm", "crm-2"),
            _upserted(echo, "billing", "bil-1"))])
        finance.hub.run_until_idle()
        status = finance.hub.status()
        assert [e["summary"] for e in finance.hub.exceptions()] == []
        assert status["deliveries"] == {"done": 2}
        assert status["duplicates_ignored"] == 1  # billing's echo
        (party,) = _parties(client, "cus_globex")
        assert party["name"] == "Globex International"
        assert _identifiers(client) == [("DE136695976", "eu_vat", True)]
        with transaction(finance.hub.engine) as conn:
            assert cross_ref.refs_of(conn, "cus_globex") == {"ledger": str(party["id"])}
    finally:
        finance.dispose()
