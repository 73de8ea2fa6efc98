"""Crash safety: workers killed with SIGKILL at random points (20 kills that land while work
is going on) lose no delivery and perform none twice once restarted. Real subprocesses, on
SQLite and PostgreSQL.

Each worker is a process of its own running `finsync run`, forked by multiprocessing's fork
server, which imported finsync once: a fresh interpreter spent 1 to 2 s of CPU importing it,
some 30 times per backend, before doing any of the work the kills must land in.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import Engine

from finsync.connectors.filedrop.ledger import FileDropLedger
from finsync.domain.clock import utc_now
from finsync.storage import outbox, raw_log
from finsync.storage.db import transaction
from finsync.storage.raw_log import RawIn
from tests.builders import lifecycle_stream
from tests.clikit import auth_section
from tests.killkit import kill_mid_work

TRIALS = 20
PER_TRIAL = 25  # customers per trial: 225 events, 150 postings
CONFIG = """
[hub]
database_url = "{url}"
intake_batch_size = 25

[delivery]
lease_s = 1
lease_expiries_max = 10  # every worker is SIGKILLed: innocent deliveries lose leases too
batch_size = 5

[ownership]
customer = "billing"
catalog = "billing"
subscription = "billing"
payments = "billing"
usage = "billing"
tax = "tax"
ledger = "ledger"
revenue = "revrec"

[systems.ledger]
role = "ledger"
connector = "filedrop"
directory = "exports"

[routes]
"invoice.issued" = ["ledger"]
"payment.applied" = ["ledger"]
"""


FORKS = multiprocessing.get_context("forkserver")
FORKS.set_forkserver_preload(["finsync.cli.main", __name__])


def _run(config: str, log: str) -> None:
    """`finsync run --json --config CONFIG` in a forked worker, its stderr to `log`."""
    os.environ["FINSYNC_DATABASE_URL"] = ""
    with open(log, "ab") as stderr, open(os.devnull, "wb") as devnull:
        os.dup2(stderr.fileno(), 2)
        os.dup2(devnull.fileno(), 1)
    sys.argv = ["finsync", "run", "--json", "--config", config]
    from finsync.cli.main import main

    main()  # exits with the command's status


def _worker(config: Path, log: Path) -> multiprocessing.process.BaseProcess:
    process = FORKS.Process(target=_run, args=(str(config), str(log)), daemon=True)
    process.start()
    return process


@pytest.mark.slow
def test_sigkilled_workers_lose_nothing_and_post_nothing_twice(engine: Engine, db_url: str,
                                                               tmp_path: Path) -> None:
    config, log = tmp_path / "finsync.toml", tmp_path / "workers.log"
    config.write_text(CONFIG.format(url=db_url) + auth_section())
    rng = random.Random(20261127)
    sent = 0
    killed_mid_work = 0
    trial = 0
    while killed_mid_work < TRIALS:
        assert trial < 2 * TRIALS, f"only {killed_mid_work} of {trial} kills landed mid-work"
        first = trial * PER_TRIAL
        lines = lifecycle_stream(customers=PER_TRIAL, amendments=2, first=first).lines()
        with transaction(engine) as conn:
            raw_log.append(conn, [RawIn("canonical", line, {}) for line in lines], utc_now())
        sent += len(lines)
        workers = [_worker(config, log) for _ in range(rng.choice((1, 2)))]
        killed_mid_work += kill_mid_work(engine, workers, log, rng.uniform(0.0, 0.15))
        trial += 1
    time.sleep(1.1)  # the dead workers' leases (1 s) expire
    final = _worker(config, log)
    final.join(300)
    assert final.exitcode == 0, log.read_text()

    postings = trial * PER_TRIAL * 3 * 2  # customers x versions x (invoice + payment)
    with transaction(engine) as conn:
        assert raw_log.counts(conn) == {"mapped": sent}
        assert outbox.counts(conn) == {"done": postings}
    per_key = Counter(d["key"] for d in FileDropLedger("ledger", tmp_path / "exports").documents())
    assert len(per_key) == postings
    assert max(per_key.values()) == 1
