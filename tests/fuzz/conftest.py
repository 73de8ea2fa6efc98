"""The fuzz suite's database (one per backend and module, so a campaign's tests share it)
and the counts it reports at the end of the run (the closing note of issue 12 quotes them;
tests/conftest.py prints them, and brings them back from pytest-xdist's workers).
"""

from __future__ import annotations

import pytest

from finsync.storage.db import make_engine
from finsync.storage.migrate import upgrade
from tests.conftest import FUZZ_REPORT, empty_postgres


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fuzz_db_url(request: pytest.FixtureRequest,
                tmp_path_factory: pytest.TempPathFactory) -> str:
    """Like `db_url` in tests/conftest.py, once per module: a campaign's tests read what
    one campaign left behind. (SQLite is in memory-backed /dev/shm where there is one, as
    every `tmp_path` is: the campaign commits some 20,000 times.)"""
    if request.param == "postgresql":
        pg_url: str = request.getfixturevalue("pg_database")
        empty_postgres(pg_url)
        return pg_url
    url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'finsync.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def fuzz_report(request: pytest.FixtureRequest) -> list[str]:
    """Lines printed after the run's summary (see `pytest_terminal_summary`)."""
    return request.config.stash.setdefault(FUZZ_REPORT, [])
