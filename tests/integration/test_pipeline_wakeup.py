"""The pipeline's wake-up: notified work wakes a waiting worker at once, a batch forms by
size or linger, nothing notified is lost; on PostgreSQL another connection's intake wakes it
through LISTEN/NOTIFY (migration 0005)."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import Engine

from finsync.hub.wakeup import LocalWakeup, PostgresWakeup, wakeup_for
from finsync.storage.db import make_engine
from finsync.storage.migrate import upgrade
from finsync.storage.raw_log import RawIn
from tests.hubkit import make_hub

LONG_S = 30.0  # a wait that, if it ran out, would fail the test by its length alone


def test_notify_before_wait_is_kept() -> None:
    wakeup = LocalWakeup()
    wakeup.notify(3)
    assert wakeup.wait(LONG_S)
    assert wakeup.take() == 3
    assert not wakeup.wait(0.0)


def test_notify_from_another_thread_wakes_the_waiter() -> None:
    wakeup = LocalWakeup()
    threading.Timer(0.01, wakeup.notify).start()
    assert wakeup.wait(LONG_S)


def test_batch_forms_by_size_before_the_linger_ends() -> None:
    wakeup = LocalWakeup()
    wakeup.notify(2)
    threading.Timer(0.01, wakeup.notify, (8,)).start()
    assert wakeup.wait_batch(10, LONG_S, LONG_S) == 10


def test_batch_forms_by_linger_when_it_stays_small() -> None:
    wakeup = LocalWakeup()
    wakeup.notify(2)
    assert wakeup.wait_batch(500, 0.01, LONG_S) == 2


def test_hub_store_notifies(engine: Engine, tmp_path: Path) -> None:
    hub = make_hub(engine, tmp_path)
    try:
        hub.wakeup.take()
        hub.store("canonical", [b"{}", b"{}"], {})
        assert hub.wakeup.wait(LONG_S)
        assert hub.wakeup.take() >= 2
    finally:
        hub.wakeup.close()


def test_another_processes_intake_wakes_the_listener(db_url: str, tmp_path: Path) -> None:
    """On PostgreSQL, intake in another process (another `application_name`) wakes the
    listener; this process's own intake does not (its writers notify directly)."""
    engine = make_engine(db_url)
    upgrade(engine)
    wakeup = wakeup_for(engine)
    if not isinstance(wakeup, PostgresWakeup):
        engine.dispose()
        return  # SQLite: another process is found by the fallback poll
    other = make_hub(make_engine(db_url, connect_args={"application_name": "finsync-other"}),
                     tmp_path)
    try:
        assert wakeup.wait(LONG_S)  # the listener's first wake-up: it is listening now
        wakeup.take()
        other.intake.store([RawIn("canonical", b"{}", {}) for _ in range(3)])
        assert wakeup.wait(LONG_S)
        assert wakeup.take() >= 1
        make_hub(engine, tmp_path).intake.store([RawIn("canonical", b"{}", {})])
        assert not wakeup.wait(1.0)
    finally:
        wakeup.close()
        other.engine.dispose()
        engine.dispose()
