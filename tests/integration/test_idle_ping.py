"""Pooled PostgreSQL connections are pinged only after sitting idle (`storage.db`): a
connection whose server session ended while it was idle is replaced before a unit of work
meets it, and one used a moment ago costs no extra round trip."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, text

from finsync.storage import db


def _backend(engine: Engine) -> int:
    with engine.begin() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


@pytest.fixture
def pg(pg_database: str) -> Any:
    engine = db.make_engine(pg_database, pool_size=1, max_overflow=0)
    yield engine
    engine.dispose()


def _pings(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    made: list[int] = []
    ping = engine.dialect.do_ping

    def counted(dbapi_connection: Any) -> bool:
        made.append(1)
        return ping(dbapi_connection)
    monkeypatch.setattr(engine.dialect, "do_ping", counted)
    return made


def test_a_connection_used_a_moment_ago_is_not_pinged(
        pg: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    _backend(pg)
    pings = _pings(pg, monkeypatch)
    for _ in range(5):
        _backend(pg)
    assert pings == []


def test_an_idle_connection_whose_session_ended_is_replaced(
        pg: Engine, pg_database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _backend(pg)
    monkeypatch.setattr(db, "PING_IDLE_S", 0.0)  # every connection in the pool is idle now
    pings = _pings(pg, monkeypatch)
    killer = db.make_engine(pg_database)
    try:
        with killer.begin() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
    finally:
        killer.dispose()
    assert _backend(pg) != first  # no error: the dead connection failed its ping
    assert len(pings) >= 1
