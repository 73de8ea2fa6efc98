"""Pytest fixtures around tests/external/tryton.py: one bootstrapped template per session,
one clone per test, a `TrytonLedger` on it. Registered in tests/conftest.py."""

from __future__ import annotations

import contextlib
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from finsync.bootstrap import Finance, build_billing_service, build_finance
from finsync.config import DEFAULT_CONFIG, SystemSection, parse_config
from finsync.connectors.tryton.bootstrap import BookSpec, bootstrap
from finsync.connectors.tryton.ledger import Entity, TrytonLedger
from finsync.connectors.tryton.rpc import TrytonClient
from finsync.demo.clock import SimClock
from finsync.storage.raw_log import RawIn
from finsync.systems.billing.service import BillingService
from tests.conftest import _unavailable
from tests.external.tryton import (
    ADMIN_PASSWORD,
    Postgres,
    TrytonSite,
    TrytonUnavailableError,
    tryton_site,
)

COMPANY = "Acme US"
ENTITIES = {"le_us": Entity(COMPANY)}


def _bootstrap(url: str, database: str) -> None:
    with TrytonClient(url, database, "admin", ADMIN_PASSWORD) as client:
        bootstrap(client, [BookSpec(COMPANY)])


@pytest.fixture(scope="session")
def tryton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrytonSite]:
    with contextlib.ExitStack() as stack:
        try:
            site = stack.enter_context(
                tryton_site(tmp_path_factory.mktemp("tryton"), _bootstrap,
                            Postgres(synchronous_commit=False)))
        except TrytonUnavailableError as exc:
            _unavailable("Tryton", exc)
        yield site


@dataclass
class TrytonBooks:
    """A fresh clone of the bootstrapped books, and how to reach it."""

    site: TrytonSite
    database: str
    _ledgers: list[TrytonLedger] = field(default_factory=list)

    def connect(self, url: str | None = None) -> Callable[[], TrytonClient]:
        target = url or self.site.server.url
        return lambda: TrytonClient(target, self.database, "admin", ADMIN_PASSWORD)

    def client(self) -> TrytonClient:
        return self.connect()()

    def ledger(self, url: str | None = None, max_batch: int = 25) -> TrytonLedger:
        return self.own(TrytonLedger("tryton", self.connect(url), ENTITIES, max_batch=max_batch))

    def own(self, ledger: TrytonLedger) -> TrytonLedger:
        """Close this ledger's connections when the test ends."""
        self._ledgers.append(ledger)
        return ledger

    def close(self) -> None:
        for ledger in self._ledgers:
            ledger.close()

    def close_period(self, entity: str, period: str) -> None:
        assert entity in ENTITIES
        with self.client() as client:
            ids = client.model("account.period", "search", [("name", "=", period)],
                               0, None, None)
            client.model("account.period", "close", ids)

    def moves(self) -> list[dict[str, object]]:
        with self.client() as client:
            rows: list[dict[str, object]] = client.model(
                "account.move", "search_read", [], 0, None, [("id", "ASC")],
                ["description", "state"])
        return rows


@pytest.fixture
def tryton_books(tryton: TrytonSite) -> Iterator[TrytonBooks]:
    books = TrytonBooks(tryton, tryton.clone())
    yield books
    books.close()
    tryton.discard(books.database)


@pytest.fixture
def tryton_finance(tryton_books: TrytonBooks, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                   ) -> Iterator[tuple[Finance, BillingService, SimClock]]:
    monkeypatch.setenv("FINSYNC_DATABASE_URL", f"sqlite:///{tmp_path / 'hub.db'}")
    monkeypatch.setenv("FINSYNC_TRYTON_PASSWORD", ADMIN_PASSWORD)
    config = parse_config(tomllib.loads(DEFAULT_CONFIG.read_text()), tmp_path)
    systems = dict(config.systems)
    systems["ledger"] = SystemSection(
        role="ledger", connector="tryton", url=tryton_books.site.server.url,
        database=tryton_books.database, companies={"le_us": COMPANY}, batch_size=10)
    ledger = config.ledger.model_copy(update={"entities": config.ledger.entities[:1]})
    config = config.model_copy(update={"systems": systems, "ledger": ledger, "pumps": {}})
    clock = SimClock(datetime(2026, 1, 1, tzinfo=UTC))
    built = build_finance(config, clock=clock)
    yield built, build_billing_service(config, built.hub.engine, clock), clock
    built.dispose()


def deliver_billing(finance: Finance, billing: BillingService, clock: SimClock) -> None:
    """Billing's pending events into the hub, delivered (the clock moves past retries)."""
    items = billing.pending(limit=1000)
    finance.hub.intake.store([RawIn("billing", i.envelope.encode(), {}) for i in items])
    billing.mark_published([i.seq for i in items])
    for _ in range(30):
        finance.hub.run_until_idle()
        if not finance.hub.status()["deliveries"].get("pending"):
            return
        clock.tick(600)
    raise AssertionError("deliveries still pending")
