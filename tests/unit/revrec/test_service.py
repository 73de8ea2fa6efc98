"""The revenue service on an SQLite file: idempotency by event id and key, stored reads."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, create_engine, update

from finsync.domain.catalog import StandaloneSellingPrice
from finsync.domain.clock import Period
from finsync.domain.money import Money
from finsync.systems.revrec import PriceChangeKind, TransactionPriceChanged
from finsync.systems.revrec import service as service_module
from finsync.systems.revrec import tables as t
from finsync.systems.revrec.errors import (
    MissingStandaloneSellingPriceError,
    RevenueBusyError,
    UnknownRevenueContractError,
)
from finsync.systems.revrec.migrate import upgrade
from finsync.systems.revrec.service import RevenueService
from tests.contract.revenue_port import SSPS, amendment, contract, invoice, usd


def _catalog(product_id: str, on: date) -> StandaloneSellingPrice | None:
    amount = SSPS.get(product_id)
    return None if amount is None else StandaloneSellingPrice(
        product_id, Money.of(amount, "USD"), date(2000, 1, 1))


@pytest.fixture
def db(tmp_path: Path) -> Engine:
    engine = create_engine(f"sqlite:///{tmp_path / 'revrec.db'}")
    upgrade(engine)
    return engine


@pytest.fixture
def service(db: Engine) -> RevenueService:
    service = RevenueService(db, _catalog)
    service.book(contract(), "k-book", "evt-book")
    return service


def test_same_event_under_another_key_changes_nothing(service: RevenueService) -> None:
    first = service.modify(amendment(), "k-1", "evt-amd")
    again = service.modify(amendment(), "k-2", "evt-amd")
    assert again.references == first.references and not again.replayed
    state = service.state("con_acme")
    assert state is not None and len(state.decisions) == 1


def test_same_key_returns_the_stored_answer(service: RevenueService) -> None:
    first = service.modify(amendment(), "k-1", "evt-amd")
    again = service.modify(amendment(), "k-1", "evt-amd")
    assert again.replayed and again.references == first.references
    assert service.find("k-1") == again


def test_derived_facts_below_ssp_split_off_the_seats_at_ssp(service: RevenueService) -> None:
    # The 300 seats at their SSP are a separate contract, analytics below SSP goes through
    # 25-13(a) (partial 25-12): both parts are in the answer, the separate contract first.
    applied = service.modify(amendment(analytics="20000.00"), "k-1", "evt-amd")
    detail = dict(applied.detail)
    assert detail["paragraph"] == "606-10-25-12 + 606-10-25-13(a)"
    assert detail["treatment"] == "separate_contract + termination_and_new_contract"
    assert detail["reason"].startswith("ln_seats+v2: distinct goods added")
    state = service.state("con_acme")
    assert state is not None and state.transaction_price == usd("95287.67")


def test_reads_answer_waterfall_rpo_balances_and_journal(service: RevenueService) -> None:
    service.record_invoice(invoice("inv_1", date(2026, 1, 1), {"prod_platform_seat":
                                                               "60000.00"}), "k-i", "evt-i")
    fall = service.waterfall("con_acme", date(2026, 1, 1), date(2027, 1, 1))
    assert sum(a.amount for a in fall.rows[0].amounts) == 60000
    rpo = service.remaining_performance_obligations("con_acme", date(2026, 1, 1))
    assert (rpo.current, rpo.non_current) == (usd("60000.00"), usd("0.00"))
    assert service.balances("con_acme", date(2026, 2, 1)).deferred_revenue == usd("54904.11")
    [entry] = service.period_journals("le_us", Period(date(2026, 1, 1), date(2026, 2, 1)))
    assert {li.amount for li in entry.lines} == {usd("5095.89")}


def test_other_events_apply_through_the_generic_call(service: RevenueService) -> None:
    event = TransactionPriceChanged("evt-tp", date(2026, 7, 1), usd("-600.00"),
                                    PriceChangeKind.PRICE_CONCESSION)
    service.apply("con_acme", event, "k-tp")
    state = service.state("con_acme")
    assert state is not None and state.transaction_price == usd("59400.00")


def test_unknown_contract_is_refused_for_reads_and_changes(service: RevenueService) -> None:
    with pytest.raises(UnknownRevenueContractError):
        service.balances("con_nobody", date(2026, 1, 1))
    assert service.schedules("con_nobody") == ()


def test_concurrent_writer_makes_the_call_busy(service: RevenueService, db: Engine,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    original = service_module._load

    def load_then_bump(conn: Connection, contract_id: str) -> object:
        loaded = original(conn, contract_id)  # another writer commits after our read
        with db.begin() as other:
            other.execute(update(t.contracts).values(row_version=t.contracts.c.row_version + 1))
        return loaded

    monkeypatch.setattr(service_module, "_load", load_then_bump)
    with pytest.raises(RevenueBusyError):
        service.modify(amendment(), "k-1", "evt-amd")
    assert service.find("k-1") is None


def test_a_contract_whose_ssps_are_in_two_currencies_is_refused(db: Engine) -> None:
    """SSPs are weighed against each other (relative SSP): 120.00 USD against 3,600,000 JPY
    would compare two currencies' numbers, so the contract is refused (a master-data
    mismatch for the revenue port) rather than allocated by a meaningless ratio."""
    def mixed(product_id: str, on: date) -> StandaloneSellingPrice | None:
        if product_id == "prod_premium_analytics":
            return StandaloneSellingPrice(product_id, Money.of("3600000", "JPY"),
                                          date(2000, 1, 1))
        return _catalog(product_id, on)

    with pytest.raises(MissingStandaloneSellingPriceError, match="in JPY, USD"):
        RevenueService(db, mixed).book(contract(analytics="24000.00"), "k-mixed", "evt-mixed")
