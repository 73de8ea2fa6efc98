"""A CPQ version duplicated, reordered or re-sent is applied once, in version order: the
reference contract's three versions (500 seats; 800 seats + analytics on 15 May; 820 seats
on 29 May) reach the CPQ source in each of the six orders, every body twice, and the whole
contract is re-sent once it has landed (one contract per order, side by side in one hub);
a version re-sent with other content after it landed is held for finance, never applied.
On the shipped configuration and the embedded billing platform, SQLite and PostgreSQL.

Worked figures (billing's, for every order): version 1 invoices 500 x 120.00 = 60,000.00
for the year; version 2 adds 300 seats and the module for 15 May .. 1 Jan 2027 (231 of 365
days): 300 x 120.00 x 231 / 365 = 22,783.56 and 24,000.00 x 231 / 365 = 15,189.04, together
37,972.60; version 3 adds 20 seats for 29 May .. 1 Jan (217 days):
20 x 120.00 x 217 / 365 = 1,426.85."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finsync.bootstrap import Finance, build_billing_service, build_finance
from finsync.config import CpqSourceSection, FinsyncConfig
from finsync.connectors.cpq.document import encode
from finsync.demo import cpq
from finsync.demo.clock import SimClock
from finsync.domain.commercial import CommercialContract
from finsync.domain.events import BusinessDomain, EventType
from finsync.domain.status import UNRESOLVED
from finsync.systems.billing.service import BillingService
from tests.hubkit import shipped_config

ORDERS = list(itertools.permutations((1, 2, 3)))  # the six orders versions can arrive in
# CPQ approved each version on its day; they reach the hub later, on 1 June, in any order.
ARRIVAL = datetime(2026, 6, 1, 9, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class World:
    finance: Finance
    billing: BillingService


@pytest.fixture
def world(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("FINSYNC_DATABASE_URL", db_url)
    config = _with_cpq(shipped_config(tmp_path))
    clock = SimClock(ARRIVAL)
    finance = build_finance(config, clock=clock)
    yield World(finance, build_billing_service(config, finance.hub.engine, clock))
    finance.dispose()


def _with_cpq(config: FinsyncConfig) -> FinsyncConfig:
    """The shipped configuration with the demo's CPQ source, which owns customers."""
    return config.model_copy(update={
        "sources": {**config.sources, cpq.SOURCE: "cpq"},
        "cpq_sources": {cpq.SOURCE: CpqSourceSection(legal_entity=cpq.ENTITY)},
        "ownership": {**config.ownership, BusinessDomain.CUSTOMER: cpq.SOURCE}})


def _versions(n: int) -> dict[int, CommercialContract]:
    """The reference contract's versions under a contract id and quote ids of their own."""
    return {v.version: replace(v, id=f"con_order_{n}", quote_id=f"{v.quote_id}_{n}")
            for v in cpq.versions()}


def _body(contract: CommercialContract) -> bytes:
    return encode(contract, datetime.combine(contract.effective_date, time(17), UTC))


def _send(world: World, *bodies: bytes) -> None:
    world.finance.hub.store(cpq.SOURCE, bodies, {})
    world.finance.hub.run_until_idle()


def test_each_version_applies_once_in_version_order_whatever_arrives(world: World) -> None:
    _send(world, encode(cpq.customer(), ARRIVAL))
    contracts = {n: _versions(n) for n in range(len(ORDERS))}
    for step in range(3):  # each order's first, second, third arrival; every body twice
        for n, order in enumerate(ORDERS):
            body = _body(contracts[n][order[step]])
            _send(world, body, body)
    for versions in contracts.values():  # CPQ re-sends the whole contract afterwards
        _send(world, *(_body(versions[v]) for v in (3, 1, 2)))

    state = world.billing.state()
    for n, versions in contracts.items():
        sub = state.subscription(versions[1].id)
        assert sub.contract.version == 3, ORDERS[n]
        assert [a.id for a in sub.amendments] == [versions[2].quote_id, versions[3].quote_id]
        assert [ln.quantity for ln in sub.contract.lines if ln.line_id == "ln_seats"] == [820]
        totals = [i.total.amount for i in world.billing.invoices(contract_id=versions[1].id)]
        assert totals == [Decimal("60000.00"), Decimal("37972.60"), Decimal("1426.85")]
    made = Counter(item.type for item in world.billing.pending(limit=1000))
    assert made[EventType.CONTRACT_CREATED] == len(ORDERS)
    assert made[EventType.CONTRACT_AMENDED] == 2 * len(ORDERS)
    # every body twice, and the whole contract again: 3 + 3 duplicates a contract
    assert world.finance.hub.status()["duplicates_ignored"] == 6 * len(ORDERS)
    unresolved = [e for e in world.finance.triage.listing(status=None)
                  if e["status"] in UNRESOLVED]
    assert unresolved == []


def test_a_version_re_sent_changed_after_it_landed_changes_nothing_in_billing(
        world: World) -> None:
    """CPQ sends version 2 again with 900 seats after billing applied the 800: the stored
    version stands (`duplicate_event` for finance to decide), billing is not touched."""
    _send(world, encode(cpq.customer(), ARRIVAL))
    versions = _versions(0)
    _send(world, *(_body(v) for v in versions.values()))
    seats, usage, analytics = versions[2].lines
    _send(world, _body(replace(versions[2], lines=(replace(seats, quantity=900), usage,
                                                   analytics))))
    sub = world.billing.state().subscription(versions[1].id)
    assert sub.contract.version == 3
    assert [a.id for a in sub.amendments] == [versions[2].quote_id, versions[3].quote_id]
    assert [ln.quantity for ln in sub.contract.lines if ln.line_id == "ln_seats"] == [820]
    raised = [(e["class"], e["correlation_id"]) for e in world.finance.triage.listing()]
    assert raised == [("duplicate_event", versions[2].quote_id)]


# Any arrival: each version sent 1 to 3 times, in any order, the hub run after any of them.
arrivals = st.lists(st.sampled_from((1, 2, 3)), min_size=3, max_size=9).filter(
    lambda sent: set(sent) == {1, 2, 3})


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(sent=arrivals, runs=st.lists(st.booleans(), min_size=9, max_size=9))
def test_any_arrival_applies_each_version_once_in_order(world: World, sent: list[int],
                                                        runs: list[bool]) -> None:
    """Property: whatever the arrival (duplicates, any order, the pipeline run after any
    body or not), billing ends at version 3 with the amendments in version order, once."""
    contract = f"con_any_{len(world.billing.state().subscriptions)}"
    versions = {v.version: replace(v, id=contract, quote_id=f"{v.quote_id}_{contract}")
                for v in cpq.versions()}
    world.finance.hub.store(cpq.SOURCE, [encode(cpq.customer(), ARRIVAL)], {})
    for version, run in zip(sent, runs, strict=False):
        world.finance.hub.store(cpq.SOURCE, [_body(versions[version])], {})
        if run:
            world.finance.hub.run_until_idle()
    world.finance.hub.run_until_idle()
    sub = world.billing.state().subscription(contract)
    assert sub.contract.version == 3
    assert [a.id for a in sub.amendments] == [versions[2].quote_id, versions[3].quote_id]
    totals = [i.total.amount for i in world.billing.invoices(contract_id=contract)]
    assert totals == [Decimal("60000.00"), Decimal("37972.60"), Decimal("1426.85")]
