"""Building a hub for tests: real storage, real file-drop ledger, a clock we can move."""

from __future__ import annotations

import json
import random
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from finsync.bootstrap import Finance, build_finance
from finsync.config import DEFAULT_CONFIG, FinsyncConfig, parse_config
from finsync.connectors.filedrop.ledger import FileDropLedger
from finsync.demo.clock import SimClock
from finsync.domain.events import BusinessDomain, EventType
from finsync.hub.mapping import CanonicalMapper, MapperRegistry
from finsync.hub.service import Hub
from finsync.hub.settings import DeliveryPolicy, HubSettings
from finsync.hub.target import Target, ledger_target
from finsync.storage import cross_ref, outbox
from finsync.storage.db import transaction
from finsync.storage.raw_log import RawIn
from tests.builders import T0

OWNERSHIP = {d: "billing" for d in BusinessDomain} | {
    BusinessDomain.LEDGER: "ledger", BusinessDomain.REVENUE: "revrec", BusinessDomain.TAX: "tax"}
LEDGER_ROUTES = {t: ("ledger",) for t in
                 ("invoice.issued", "credit_memo.issued", "payment.applied", "refund.issued")}


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: T0 + timedelta(days=400))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def settings(routes: Mapping[str, tuple[str, ...]] | None = None, *, gap_wait_s: float = 300,
             attempts_max: int = 5) -> HubSettings:
    chosen = routes if routes is not None else LEDGER_ROUTES
    return HubSettings(OWNERSHIP, {EventType(t): targets for t, targets in chosen.items()},
                       DeliveryPolicy(attempts_max=attempts_max, backoff_base_s=1,
                                      backoff_cap_s=60, lease_s=30, batch_size=20),
                       gap_wait_s=gap_wait_s, intake_batch_size=50)


def make_hub(engine: Engine, exports: Path, *, targets: Mapping[str, Target] | None = None,
             hub_settings: HubSettings | None = None, clock: Clock | None = None) -> Hub:
    hub = Hub(engine, hub_settings or settings(),
              # `billing` for HTTP intake, where events must say the source they are sent as
              MapperRegistry({"canonical": CanonicalMapper(), "billing": CanonicalMapper()}),
              targets if targets is not None else {
                  "ledger": ledger_target(FileDropLedger("ledger", exports))},
              clock or Clock(), "test-worker")
    hub.worker._rng = random.Random(7)  # deterministic jitter in tests
    return hub


def ingest(hub: Hub, lines: list[bytes]) -> None:
    hub.intake.store([RawIn("canonical", line, {}) for line in lines])


def books(hub: Hub, exports: Path) -> dict[str, Any]:
    """Everything a delivery leaves behind, in a comparable form."""
    documents = FileDropLedger("ledger", exports).documents()
    with transaction(hub.engine) as conn:
        deliveries = [(d["delivery_key"], d["status"], d["result"])
                      for d in outbox.all_rows(conn)]
        refs = cross_ref.all_rows(conn)
    return {"deliveries": deliveries, "cross_refs": refs,
            "documents": sorted(json.dumps(d, sort_keys=True) for d in documents)}


def run_settled(call: Callable[[list[str]], Any], rounds: int = 40) -> Any:
    """`finsync run` until no delivery is pending: invoices may reach the revenue engine
    before the contract change they bill and are retried after a (real-time) back-off."""
    for _ in range(rounds):
        result = call(["run"])
        if not result["status"]["deliveries"].get("pending"):
            return result
        time.sleep(0.25)
    raise AssertionError(f"deliveries still pending: {result['status']}")


# Ledger postings only; contracts to the revenue engine (which revrec needs to know them).
LEDGER_ONLY = {"invoice.issued": ["ledger"], "payment.applied": ["ledger"],
               "contract.created": ["revrec"], "contract.amended": ["revrec"]}


def shipped_config(base: Path) -> FinsyncConfig:
    """The shipped configuration (`finsync init`'s), rooted in `base`, without pumps."""
    config = parse_config(tomllib.loads(DEFAULT_CONFIG.read_text()), base)
    return config.model_copy(update={"pumps": {}})


def ledger_world(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
                 ) -> Iterator[tuple[Finance, SimClock]]:
    """Finance on the shipped configuration (routes `LEDGER_ONLY`, no pumps) on `db_url`,
    with a simulated clock from 2026-01-01 09:00 UTC; for a fixture to yield from."""
    monkeypatch.setenv("FINSYNC_DATABASE_URL", db_url)
    config = shipped_config(tmp_path).model_copy(update={"routes": LEDGER_ONLY})
    clock = SimClock(datetime(2026, 1, 1, 9, tzinfo=UTC))
    finance = build_finance(config, clock=clock)
    yield finance, clock
    finance.hub.engine.dispose()


def send_events(finance: Finance, *events: dict[str, object]) -> None:
    """`events` stored as raw events of the canonical source, then the hub run until idle."""
    finance.hub.intake.store([RawIn("canonical", json.dumps(e).encode(), {}) for e in events])
    finance.hub.run_until_idle()
