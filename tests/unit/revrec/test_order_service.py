"""The revenue service keeps each contract's events and rebuilds it in canonical order when
an event comes dated before one it has applied, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine, delete, func, select

from finsync.domain.catalog import StandaloneSellingPrice
from finsync.domain.money import Money
from finsync.systems.revrec import (
    ModificationFacts,
    PriceChangeKind,
    RevenueContractState,
    TransactionPriceChanged,
    replay,
    schedules,
)
from finsync.systems.revrec import tables as t
from finsync.systems.revrec.migrate import upgrade
from finsync.systems.revrec.service import RevenueService
from tests.unit.revrec.builders import booked, line, modified, ssp, usd

JUL1 = date(2026, 7, 1)
S, H = line("ln_s", 1, "12000.00", "prod_s"), line("ln_h", 1, "24000.00", "prod_h")
A = line("ln_a", 1, "10000.00", "prod_a", JUL1)
SSPS = {s.product_id: s for s in (ssp("prod_s", "12000"), ssp("prod_h", "36000"),
                                  ssp("prod_a", "12000"))}
FACTS = ModificationFacts(True, False)
MOD = modified("evt_mod", JUL1, S, H, A, facts=FACTS, ssps=tuple(SSPS.values()))
CHANGE = TransactionPriceChanged("evt_tp", JUL1, usd("3600.00"),
                                 PriceChangeKind.VARIABLE_CONSIDERATION)
LATER = TransactionPriceChanged("evt_tp2", date(2026, 9, 1), usd("-100.00"),
                                PriceChangeKind.PRICE_CONCESSION)


def _catalog(product_id: str, on: date) -> StandaloneSellingPrice | None:
    return SSPS.get(product_id)


def _service(engine: Engine) -> RevenueService:
    upgrade(engine)
    service = RevenueService(engine, _catalog)
    service.book(booked(S, H).contract, "k-book", "evt_book")
    return service


def _kept(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.execute(select(t.events.c.event_id)).scalars())


def test_a_back_dated_event_rebuilds_the_contract_in_canonical_order(engine: Engine) -> None:
    service = _service(engine)
    first = service.modify(MOD.amendment, "k-mod", "evt_mod", FACTS)
    applied = service.apply("con_t", CHANGE, "k-tp")  # sorts before the modification
    state = service.state("con_t")
    assert state is not None
    expected = replay(booked(S, H, ssps=tuple(SSPS.values())), [MOD, CHANGE])
    assert _amounts(state) == _amounts(expected)
    before = dict(first.references)
    after = dict(applied.references)
    assert all(int(after[ob][after[ob].rindex("v") + 1:]) > int(
        before[ob][before[ob].rindex("v") + 1:]) for ob in before)  # never a version reused
    assert _kept(engine) == ["evt_mod", "evt_tp"]
    july = {s.obligation_id: next(li.amount for li in s.lines if li.period.start == JUL1)
            for s in service.schedules("con_t")}
    assert july["ln_s"] == usd("1288.83")  # the catch-up of January-June is in July
    assert service.apply("con_t", CHANGE, "k-tp-again").references == applied.references


def _amounts(state: RevenueContractState) -> list[object]:
    """Schedules by amount (their lines' traces carry the versions, which differ)."""
    return [(s.obligation_id, [(li.period, li.amount) for li in s.lines])
            for s in schedules(state)]


def test_a_contract_stored_before_the_event_log_starts_it_at_its_next_event(
        engine: Engine) -> None:
    """No back-fill: the baseline of a contract stored before revrec_0003 is its state when
    its first event after the upgrade comes; events after it are put in canonical order."""
    service = _service(engine)
    service.modify(MOD.amendment, "k-mod", "evt_mod", FACTS)
    with engine.begin() as conn:  # as a database upgraded from revrec_0002 holds it
        conn.execute(delete(t.events))
        conn.execute(delete(t.event_baselines))
    service.apply("con_t", LATER, "k-later")
    with engine.connect() as conn:
        baselines = conn.execute(select(func.count()).select_from(t.event_baselines)).scalar()
    assert baselines == 1 and _kept(engine) == ["evt_tp2"]
    early = TransactionPriceChanged("evt_tp3", date(2026, 8, 1), usd("50.00"),
                                    PriceChangeKind.VARIABLE_CONSIDERATION)
    service.apply("con_t", early, "k-early")  # before evt_tp2: rebuilt from the baseline
    state = service.state("con_t")
    assert state is not None and state.transaction_price == Money.of("40991.10", "USD")
    assert _kept(engine) == ["evt_tp2", "evt_tp3"]
