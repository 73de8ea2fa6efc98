"""A billing outage during orchestration loses nothing: the workers that order CPQ versions
from billing (`finsync run`, real processes) are SIGKILLed again and again (10 kills that
land while orders are being applied) while billing is down now and then, and answers that
it applied an order are lost on the way back. Once a last worker finishes, every CPQ
version is in billing exactly once: each contract at version 3, each quote applied once (the
contract's amendments, billing's contract events and its invoices count them), every order
delivery done, no exception left. On SQLite and PostgreSQL.

The billing platform's outage is injected in the worker (`_flaky`): before the order is
applied (billing down: nothing happened) or after (billing applied it and the answer was
lost): both are `TransientError`s the hub retries, and billing's idempotency by order id
(`SubscriptionPlatformPort.apply_order`) turns a retry of the second kind into the first
receipt. Workers are forked as in test_kill.py. The customer is registered with billing
before the trials (the orders are what is killed and retried; a customer's own ordering is
the subscription platform's, `SubscriptionPlatformPort.upsert_customer`)."""

from __future__ import annotations

import multiprocessing
import os
import random
import sys
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from finsync.bootstrap import build_billing_service
from finsync.config import load_config
from finsync.connectors.cpq.document import encode
from finsync.demo import cpq
from finsync.domain.errors import TransientError
from finsync.domain.events import EventType
from finsync.storage import exception_log, outbox, raw_log
from finsync.storage.db import transaction
from finsync.storage.raw_log import RawIn
from finsync.systems.billing.handler import RegisterCustomer
from tests.clikit import auth_section
from tests.killkit import kill_mid_work

KILLS = 10
PER_TRIAL = 3  # contracts a trial: 9 CPQ versions, sent shuffled, some twice
DOWN, LOST = 0.25, 0.15  # the chance that billing is down / that its answer is lost
CONFIG = """
[hub]
database_url = "{url}"
intake_batch_size = 4

[delivery]
lease_s = 1
lease_expiries_max = 100  # every worker is SIGKILLed: innocent deliveries lose leases too
attempts_max = 100        # billing's outage is long; the test is about what survives it
backoff_base_s = 0.01
backoff_cap_s = 0.05
batch_size = 2

[ownership]
customer = "billing"
commercial = "cpq"
catalog = "billing"
subscription = "billing"
payments = "billing"
usage = "billing"
tax = "tax"
ledger = "ledger"
revenue = "revrec"

[sources]
cpq = "cpq"

[cpq_sources.cpq]
legal_entity = "le_us"

[systems.billing]
role = "billing"
connector = "embedded"

[systems.tax]
role = "tax"
connector = "embedded"

[routes]
"commercial_contract.approved" = ["billing"]
"""

FORKS = multiprocessing.get_context("forkserver")
FORKS.set_forkserver_preload(["finsync.cli.main", __name__])


def _flaky(seed: int, faults: str) -> None:
    """Billing, in this worker, is down now and then, and loses some of its answers; each
    fault is noted in the file `faults` (one line: `down` or `lost`)."""
    from finsync.connectors.embedded import subscription_platform as platform

    rng = random.Random(seed)
    cls: Any = platform.EmbeddedSubscriptionPlatform
    apply_order = cls.apply_order

    def note(fault: str) -> None:
        with open(faults, "a") as noted:
            noted.write(fault + "\n")

    def flaky(self: Any, order: Any, ctx: Any) -> Any:
        roll = rng.random()
        if roll < DOWN:
            note("down")
            raise TransientError("billing is down (injected)")
        receipt = apply_order(self, order, ctx)
        if roll > 1 - LOST:
            note("lost")
            raise TransientError("billing's answer was lost (injected)")
        return receipt

    cls.apply_order = flaky


def _run(config: str, log: str, seed: int | None) -> None:
    """`finsync run --json --config CONFIG` in a forked worker, its stderr to `log`;
    billing flaky unless `seed` is None (its faults noted beside the log)."""
    os.environ["FINSYNC_DATABASE_URL"] = ""
    with open(log, "ab") as stderr, open(os.devnull, "wb") as devnull:
        os.dup2(stderr.fileno(), 2)
        os.dup2(devnull.fileno(), 1)
    if seed is not None:
        _flaky(seed, f"{log}.faults")
    sys.argv = ["finsync", "run", "--json", "--config", config]
    from finsync.cli.main import main

    main()  # exits with the command's status


def _worker(config: Path, log: Path, seed: int | None) -> multiprocessing.process.BaseProcess:
    process = FORKS.Process(target=_run, args=(str(config), str(log), seed), daemon=True)
    process.start()
    return process


def _bodies(trial: int, rng: random.Random) -> list[bytes]:
    """The trial's contracts, each the reference contract's three versions under ids of its
    own, shuffled (so versions arrive out of order), a third of them sent twice."""
    bodies = []
    for n in range(trial * PER_TRIAL, (trial + 1) * PER_TRIAL):
        for version in cpq.versions():
            contract = replace(version, id=f"con_kill_{n}", quote_id=f"{version.quote_id}_{n}")
            at = datetime.combine(contract.effective_date, datetime.min.time(), UTC)
            bodies.append(encode(contract, at))
    bodies += rng.sample(bodies, len(bodies) // 3)
    rng.shuffle(bodies)
    return bodies


@pytest.mark.slow
def test_each_cpq_version_lands_in_billing_once_through_kills_and_outages(
        engine: Engine, db_url: str, tmp_path: Path) -> None:
    config, log = tmp_path / "finsync.toml", tmp_path / "workers.log"
    config.write_text(CONFIG.format(url=db_url) + auth_section())
    loaded = load_config(config)
    billing = build_billing_service(loaded, engine)
    billing.execute(RegisterCustomer(cpq.customer()))
    rng = random.Random(20261206)
    killed_mid_work = trial = 0
    while killed_mid_work < KILLS:
        assert trial < 3 * KILLS, f"only {killed_mid_work} of {trial} kills landed mid-work"
        with transaction(engine) as conn:
            raw_log.append(conn, [RawIn(cpq.SOURCE, body, {})
                                  for body in _bodies(trial, rng)], datetime.now(UTC))
        workers = [_worker(config, log, rng.randrange(2**32))
                   for _ in range(rng.choice((1, 2)))]
        killed_mid_work += kill_mid_work(engine, workers, log, rng.uniform(0.0, 0.2))
        trial += 1
    time.sleep(1.1)  # the dead workers' leases (1 s) expire
    final = _worker(config, log, None)
    final.join(300)
    assert final.exitcode == 0, log.read_text()

    contracts = [f"con_kill_{n}" for n in range(trial * PER_TRIAL)]
    with transaction(engine) as conn:
        assert outbox.counts(conn) == {"done": 3 * len(contracts)}
        raised = exception_log.counts(conn)
    assert {status for status, classes in raised.items() if classes} <= {"resolved"}, raised
    state = billing.state()
    for n, contract in enumerate(contracts):
        sub = state.subscription(contract)
        assert sub.contract.version == 3
        assert [a.id for a in sub.amendments] == [f"{cpq.UPGRADE}_{n}", f"{cpq.ADD_ON}_{n}"]
        totals = [i.total.amount for i in billing.invoices(contract_id=contract)]
        assert totals == [Decimal("60000.00"), Decimal("37972.60"), Decimal("1426.85")]
    made = Counter(item.type for item in billing.pending(limit=10_000))
    assert made[EventType.CONTRACT_CREATED] == len(contracts)
    assert made[EventType.CONTRACT_AMENDED] == 2 * len(contracts)
    faults = Counter(Path(f"{log}.faults").read_text().split())
    assert faults["down"] > 0 and faults["lost"] > 0, faults  # both kinds happened
