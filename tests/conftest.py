"""Backends for every storage test: SQLite always, PostgreSQL when reachable.

`FINSYNC_REQUIRE_SERVICES=1` (set by CI) turns an unreachable PostgreSQL into a failure
instead of a skip. `FINSYNC_TEST_PG_URL` points at a server whose role may create databases.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from finsync.audit.migrate import upgrade as upgrade_audit
from finsync.auth.migrate import upgrade as upgrade_auth
from finsync.controls.migrate import upgrade as upgrade_controls
from finsync.storage.db import make_engine, normalise_url
from finsync.storage.migrate import upgrade as upgrade_hub

pytest_plugins = ("tests.external.tryton_fixtures",)

PG_URL = os.environ.get("FINSYNC_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_SERVICES = os.environ.get("FINSYNC_REQUIRE_SERVICES") == "1"


def upgrade(engine: Engine) -> None:
    """The schemas every hub database holds: the hub's, the audit trail's, the tokens' and
    the two-person controls'."""
    upgrade_hub(engine)
    upgrade_audit(engine)
    upgrade_auth(engine)
    upgrade_controls(engine)


def _unavailable(what: str, exc: Exception) -> None:
    message = f"{what} is not reachable ({exc.__class__.__name__}: {exc})"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message}; FINSYNC_REQUIRE_SERVICES=1 makes this a failure")
    pytest.skip(f"{message}; set FINSYNC_TEST_PG_URL to run the PostgreSQL tests")


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A database of its own for this test session, migrated once, dropped at the end."""
    admin = create_engine(normalise_url(PG_URL), isolation_level="AUTOCOMMIT")
    name = f"finsync_test_{os.getpid()}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        _unavailable("PostgreSQL", exc)
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'finsync.db'}"
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        return url
    url: str = request.getfixturevalue("pg_database")
    empty_postgres(url)
    return url


def empty_postgres(url: str) -> None:
    """Every table of every system emptied, the schema versions kept."""
    engine = make_engine(url)
    with engine.begin() as conn:
        names = conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = "
                                  "current_schema() AND tablename NOT LIKE '%alembic_version'"))
        tables = ", ".join(f'"{name}"' for (name,) in names)
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()
