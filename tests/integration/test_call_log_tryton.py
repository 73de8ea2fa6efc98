"""The call log against a real trytond: every RPC of a delivery is filed under its
correlation id and key, with Tryton's error kind and never the password, the session token
or a refusal's text; and through the hub, one amendment's calls to Tryton and to the
revenue engine are listed by its correlation id."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from finsync.bootstrap import Finance
from finsync.connectors.calls import Subject, delivering
from finsync.connectors.tryton.ledger import TrytonLedger
from finsync.connectors.tryton.rpc import TrytonClient
from finsync.demo.clock import SimClock
from finsync.domain.call import Call
from finsync.domain.catalog import BillingFrequency
from finsync.domain.contract import ContractLine, SubscriptionContract
from finsync.domain.errors import ExceptionClass, PermanentError
from finsync.domain.money import Money
from finsync.domain.party import CustomerAccount
from finsync.storage.db import reading
from finsync.storage.schema import deliveries
from finsync.systems.billing.amendment import AmendSubscription
from finsync.systems.billing.edit import AddSeats
from finsync.systems.billing.handler import RegisterCustomer
from finsync.systems.billing.service import BillingService
from finsync.systems.billing.subscription import CreateSubscription
from tests.contract.ledger_port import ctx
from tests.external.tryton import ADMIN_PASSWORD
from tests.external.tryton_fixtures import ENTITIES, TrytonBooks, deliver_billing
from tests.ledgerkit import invoice

START, END = date(2026, 1, 1), date(2027, 1, 1)
AMENDMENT = "amd_acme_0002"


class Calls(list[Call]):
    def record(self, call: Call) -> None:
        self.append(call)


def _recording(books: TrytonBooks, calls: Calls) -> tuple[TrytonLedger, list[TrytonClient]]:
    clients: list[TrytonClient] = []

    def connect() -> TrytonClient:
        client = TrytonClient(books.site.server.url, books.database, "admin", ADMIN_PASSWORD,
                              recorder=calls, system="tryton")
        clients.append(client)
        return client
    return books.own(TrytonLedger("tryton", connect, ENTITIES)), clients


def test_every_rpc_of_a_delivery_is_filed_under_it_without_credentials(
        tryton_books: TrytonBooks) -> None:
    calls = Calls()
    ledger, clients = _recording(tryton_books, calls)
    with delivering([Subject("amd_1", "evt_1:tryton")]):
        ledger.post_invoice(invoice("inv_1", ["100.00"]), ctx("evt_1:tryton"))
    methods = [c.method for c in calls]
    assert methods[0] == "common.db.login"
    assert {"model.account.move.create", "model.account.move.post"} <= set(methods)
    assert all(c.subjects == (Subject("amd_1", "evt_1:tryton"),) for c in calls)
    assert all(c.system == "tryton" and c.channel == "json-rpc" and c.status == "200"
               and c.error is None and c.duration_us > 0 for c in calls)
    assert all(c.endpoint.endswith(f"/{tryton_books.database}/rpc/") for c in calls)
    login = calls[0]
    assert login.request_excerpt is None and login.response_excerpt is None
    assert login.request_bytes and login.response_bytes
    create = next(c for c in calls if c.method == "model.account.move.create")
    assert create.request_excerpt is not None and '"credit":"100.00"' in create.request_excerpt
    session = clients[0]._session
    assert session is not None
    assert not any(session in (c.request_excerpt or "") + (c.response_excerpt or "")
                   for c in calls)


def test_a_refusal_is_filed_with_its_kind_and_not_its_text(tryton_books: TrytonBooks) -> None:
    calls = Calls()
    ledger, _clients = _recording(tryton_books, calls)
    ledger.post_invoice(invoice("inv_1", ["100.00"]), ctx("k1"))  # loads the company
    tryton_books.close_period("le_us", "2026-01")
    calls.clear()
    with delivering([Subject("amd_2", "evt_2:tryton")]), pytest.raises(PermanentError) as caught:
        ledger.post_invoice(invoice("inv_2", ["50.00"]), ctx("evt_2:tryton"))
    assert caught.value.exception_class is ExceptionClass.CLOSED_PERIOD
    refused = [c for c in calls if c.error is not None]
    assert refused and all(c.status == "200" and c.error == "UserError" for c in refused)
    assert all(c.subjects == (Subject("amd_2", "evt_2:tryton"),) for c in calls)
    message = str(caught.value).split(": ", 1)[1][:20]
    assert not any(message in (c.response_excerpt or "") for c in refused)




def test_an_amendments_calls_to_tryton_and_the_revenue_engine_are_listed_by_its_correlation(
        tryton_finance: tuple[Finance, BillingService, SimClock]) -> None:
    finance, billing, clock = tryton_finance
    usd = lambda amount: Money.of(amount, "USD")  # noqa: E731
    billing.execute(RegisterCustomer(CustomerAccount("cus_acme", "Acme Analytics", "le_us",
                                                     "USD", "US")))
    billing.execute(CreateSubscription(SubscriptionContract(
        "con_acme", "cus_acme", "le_us", "USD", START, END, BillingFrequency.ANNUAL,
        (ContractLine("ln_seats", "prod_platform_seat", "price_seat_annual", 500,
                      usd("120.00"), START, END),))))
    deliver_billing(finance, billing, clock)
    clock.to(date(2026, 5, 15))
    billing.execute(AmendSubscription(AMENDMENT, "con_acme", date(2026, 5, 15),
                                      (AddSeats("ln_seats", 300),), "upgrade"))
    deliver_billing(finance, billing, clock)

    calls = finance.hub.calls(AMENDMENT)
    with reading(finance.hub.engine) as conn:
        wanted = {(str(t), str(k)) for t, k in conn.execute(
            select(deliveries.c.target, deliveries.c.delivery_key)
            .where(deliveries.c.correlation_id == AMENDMENT))}
    assert {t for t, _k in wanted} == {"ledger", "revrec", "tax"}
    called = {(c.system, k) for c in calls for k in c.idempotency_keys}
    assert called >= wanted
    by_channel = {(c.system, c.channel) for c in calls}
    assert by_channel == {("ledger", "json-rpc"), ("revrec", "port"), ("tax", "port")}
    rpcs = {c.method for c in calls if c.system == "ledger"}
    assert {"model.account.move.create", "model.account.move.post"} <= rpcs
    assert all(c.status in {"200", "ok", "transient"} for c in calls)
    assert "Acme Analytics" not in repr(calls)
