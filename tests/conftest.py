"""Backends for every storage test: SQLite always, PostgreSQL when reachable.

`FINSYNC_REQUIRE_SERVICES=1` (set by CI) turns an unreachable PostgreSQL into a failure
instead of a skip. `FINSYNC_TEST_PG_URL` points at a server whose role may create databases.

`dev.py test` runs the suite on pytest-xdist's workers (`-n auto --dist loadfile`): each
worker is a process with its own session fixtures (its PostgreSQL database, its localstripe,
its trytond on free ports), and the scheduler below keeps together the tests that share an
expensive fixture (see `_scope`).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from finsync.audit.migrate import upgrade as upgrade_audit
from finsync.auth.migrate import upgrade as upgrade_auth
from finsync.controls.migrate import upgrade as upgrade_controls
from finsync.storage.db import make_engine, normalise_url
from finsync.storage.migrate import upgrade as upgrade_hub
from finsync.streaming.settings import TransportSettings
from finsync.systems.billing.migrate import upgrade as upgrade_billing
from finsync.systems.ledger.migrate import upgrade as upgrade_ledger
from finsync.systems.revrec.migrate import upgrade as upgrade_revrec
from finsync.systems.tax.migrate import upgrade as upgrade_tax
from tests.natskit import NatsCluster, NatsUnavailableError

pytest_plugins = ("tests.external.tryton_fixtures",)

LISTENER = "finsync-wakeup"  # the thread of hub.wakeup.PostgresWakeup
LISTENER_STOP_S = 5.0  # a closed listener ends within its tick (0.5 s); slack for a busy CI

# A pytest-xdist worker starts with COLUMNS=80 and LINES=24 in its environment, and rich
# reads them once, when the CLI's console is made at import: its tables would then be 80
# columns wide whatever width a test's CliRunner asks for. A worker sees what one process
# sees: neither is set.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _name in ("COLUMNS", "LINES"):
        os.environ.pop(_name, None)

# Every `tmp_path` (and so every SQLite test database) on memory-backed /dev/shm where
# there is one: SQLite commits with synchronous=FULL, and on a disk its fsync was a fifth
# of a lifecycle test's time; the pragma still runs, only the flush is free. What the tests
# check is what any process sees, never a machine crash. pytest reads this (its retention
# of 3 sessions applies), and its xdist workers inherit it.
SHM = Path("/dev/shm")
if "PYTEST_DEBUG_TEMPROOT" not in os.environ and SHM.is_dir() and os.access(SHM, os.W_OK):
    os.environ["PYTEST_DEBUG_TEMPROOT"] = str(SHM)

# Where PYTHONDONTWRITEBYTECODE is set (this machine sets it), every interpreter of a run
# compiled every module it imported from source: each xdist worker spent 13 s collecting
# (assertion rewriting included) instead of 6 s, and each subprocess a test starts (the
# CLI, workers, intake nodes) some 0.7 s more to import finsync. The run writes bytecode,
# but under the git-ignored .cache/pycache (PYTHONPYCACHEPREFIX), never beside the sources
# nor into the shared .venv, which is what that setting keeps clean; workers and
# subprocesses inherit both variables.
if sys.dont_write_bytecode and "PYTHONPYCACHEPREFIX" not in os.environ:
    _PYCACHE = Path(__file__).resolve().parent.parent / ".cache" / "pycache"
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(_PYCACHE)
    sys.dont_write_bytecode = False
    sys.pycache_prefix = str(_PYCACHE)

PG_URL = os.environ.get("FINSYNC_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_SERVICES = os.environ.get("FINSYNC_REQUIRE_SERVICES") == "1"


def upgrade(engine: Engine) -> None:
    """The schemas every hub database holds: the hub's, the audit trail's, the tokens' and
    the two-person controls'; and the embedded systems' of the default configuration
    (billing, ledger, revenue, tax), which most tests build (`build_finance`): from a
    template at head their migrations only check the version, instead of creating every
    table again in each SQLite test (on PostgreSQL the first test of a session did it)."""
    upgrade_hub(engine)
    upgrade_audit(engine)
    upgrade_auth(engine)
    upgrade_controls(engine)
    upgrade_billing(engine)
    upgrade_ledger(engine)
    upgrade_revrec(engine)
    upgrade_tax(engine)


@pytest.fixture(autouse=True)
def _no_listener_outlives_its_test() -> Iterator[None]:
    """A PostgreSQL wake-up listener left running outlives the test database: at the end of
    the session it reports "wake-up listener: OperationalError" and holds a connection. The
    test that starts one (a served pipeline) must stop it: stop the supervisor, leave the
    TestClient's `with`, or call `hub.wakeup.close()`."""
    before = {t for t in threading.enumerate() if t.name == LISTENER}
    yield
    left = [t for t in threading.enumerate() if t.name == LISTENER and t not in before]
    for thread in left:
        thread.join(LISTENER_STOP_S)
    running = [t for t in left if t.is_alive()]
    assert not running, "a PostgreSQL wake-up listener (hub.wakeup) still runs after the test"


def _unavailable(what: str, exc: Exception) -> None:
    message = f"{what} is not reachable ({exc.__class__.__name__}: {exc})"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message}; FINSYNC_REQUIRE_SERVICES=1 makes this a failure")
    pytest.skip(f"{message}; set FINSYNC_TEST_PG_URL to run the PostgreSQL tests")


def create_database(conn: Connection, name: str, attempts: int = 20) -> None:
    """CREATE DATABASE copies template1, and refuses while another session (another test
    process creating its own database, a trytond creating one) is in template1: wait and
    try again rather than fail the session."""
    for attempt in range(attempts):
        try:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
            return
        except OperationalError as exc:
            if "is being accessed by other users" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.25 + 0.25 * attempt)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A database of its own for this test session, migrated once, dropped at the end."""
    admin = create_engine(normalise_url(PG_URL), isolation_level="AUTOCOMMIT")
    name = f"finsync_test_{os.getpid()}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            create_database(conn, name)
            # A commit need not wait for its WAL to reach the disk: what a test sees, and
            # what another connection sees, is the same; only a crash of the PostgreSQL
            # server itself could lose the last commits, and no test crashes it.
            conn.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    except OperationalError as exc:
        admin.dispose()
        _unavailable("PostgreSQL", exc)
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    _dispose_emptying(url)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def nats_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    """A real 3-node JetStream cluster for this test session (so one per xdist worker),
    from the pinned nats-server of the dev extra; about 2 s to start. Tests share it: each
    takes a namespace of its own (`transport_settings`). A test that kills a node restarts
    it before it ends (`NatsCluster.restart`)."""
    try:
        cluster = NatsCluster(tmp_path_factory.mktemp("nats"))
    except NatsUnavailableError as exc:
        _nats_unavailable(exc)
    try:
        cluster.start()
    except NatsUnavailableError as exc:
        cluster.stop()
        _nats_unavailable(exc)
    yield cluster
    cluster.stop()


def _nats_unavailable(exc: Exception) -> None:
    message = f"NATS JetStream cluster unavailable: {exc}"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message}; FINSYNC_REQUIRE_SERVICES=1 makes this a failure")
    pytest.skip(f"{message}; `pip install -e .[dev]` installs the pinned nats-server")


@pytest.fixture
def transport_settings(nats_cluster: NatsCluster) -> Iterator[TransportSettings]:
    """Settings for a namespace of this test's own (its streams, consumers and buckets are
    apart from every other test's) on the session's cluster, with 3 replicas; its streams
    are deleted after the test."""
    for i in nats_cluster.nodes_down():
        nats_cluster.restart(i)  # a test that failed while a node was down
    settings = TransportSettings(kind="nats", servers=nats_cluster.urls,
                                 namespace=f"t{uuid.uuid4().hex[:16]}", replicas=3)
    yield settings
    nats_cluster.drop_namespace(settings.namespace)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file made once per session: each test copies it (under a
    millisecond) instead of running every migration again (about 0.3 s a test)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "finsync.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()  # the last connection closed: the WAL is checkpointed into the file
    assert not path.with_name(f"{path.name}-wal").exists()
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database on each backend."""
    return _empty_database(request, tmp_path)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_db_url(request: pytest.FixtureRequest,
                  tmp_path_factory: pytest.TempPathFactory) -> str:
    """`db_url` once per module and backend, for a module whose tests only read what one
    expensive setup wrote (pytest runs a module's tests of one backend together, and an
    xdist worker runs a module's tests one after another, so no other test empties the
    PostgreSQL database in between)."""
    return _empty_database(request, tmp_path_factory.mktemp("module-db"))


def _empty_database(request: pytest.FixtureRequest, folder: Path) -> str:
    """A migrated, empty database of the backend `request.param`: SQLite, a copy of the
    session's template in `folder`; PostgreSQL, the worker's database emptied."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = folder / "finsync.db"
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("pg_database")
    empty_postgres(url)
    return url


_EMPTYING: dict[str, tuple[Engine, bool]] = {}  # per test database: engine, superuser?


def empty_postgres(url: str) -> None:
    """Every table of every system emptied and every sequence restarted, the schema
    versions kept, as `TRUNCATE … RESTART IDENTITY CASCADE` of every table would; but only
    the tables that hold rows are emptied (a test writes to a few of the 60-odd), and only
    the sequences that were used are restarted (a rolled-back insert uses one).

    A superuser empties them with DELETE, its foreign-key checks and triggers off
    (`session_replication_role = replica`: every table holding rows goes in this same
    transaction, so nothing is left pointing at a deleted row): on a test's few rows that
    is some 20 times faster than TRUNCATE, which makes new files for each table."""
    engine, superuser = _EMPTYING.get(url) or _emptying_engine(url)
    with engine.begin() as conn:
        names = [name for (name,) in conn.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
            "AND tablename NOT LIKE '%alembic_version'"))]
        if names:
            probes = " UNION ALL ".join(
                f"SELECT '{name}' WHERE EXISTS (SELECT 1 FROM \"{name}\")" for name in names)
            holding = [name for (name,) in conn.execute(text(probes))]
            if holding and superuser:
                conn.execute(text("SET LOCAL session_replication_role = replica"))
                for name in holding:
                    conn.execute(text(f'DELETE FROM "{name}"'))
            elif holding:
                tables = ", ".join(f'"{name}"' for name in holding)
                conn.execute(text(f"TRUNCATE {tables} CASCADE"))
        used = conn.execute(text(
            "SELECT sequencename FROM pg_sequences WHERE schemaname = current_schema() "
            "AND last_value IS NOT NULL")).all()
        for (sequence,) in used:
            conn.execute(text(f'ALTER SEQUENCE "{sequence}" RESTART'))


def _emptying_engine(url: str) -> tuple[Engine, bool]:
    engine = make_engine(url)
    with engine.connect() as conn:
        superuser = conn.execute(text("SELECT current_setting('is_superuser')")).scalar() == "on"
    _EMPTYING[url] = (engine, superuser)
    return engine, superuser


def _dispose_emptying(url: str) -> None:
    emptying = _EMPTYING.pop(url, None)
    if emptying is not None:
        emptying[0].dispose()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


# -- pytest-xdist -------------------------------------------------------------------------

# Files whose tests use the session's Tryton template (tests/external/tryton_fixtures.py):
# one work unit, so one worker builds the template (seconds from the cached activated
# modules, a minute or more without them) and the others never wait for it. A file missing
# here would build a template of its own on another worker: collection refuses it
# (`pytest_collection_modifyitems`).
TRYTON_FILES = frozenset({
    "tests/contract/test_tryton_ledger_port.py",
    "tests/contract/test_tryton_party_port.py",
    "tests/integration/test_call_log_tryton.py",
    "tests/integration/test_demo_stack.py",
    "tests/integration/test_tryton.py",
    "tests/integration/test_tryton_parties.py",
    "tests/integration/test_tryton_tax.py",
    "tests/integration/test_tryton_workflow.py",
})
FUZZ_CAMPAIGN = "tests/fuzz/test_intake_fuzz.py"
LIFECYCLES = "tests/integration/test_lifecycles.py"
KILL = "tests/integration/test_kill.py"
# Files of a few long tests on each backend: one work unit per backend, so that two workers
# share each file (the fuzz campaign's module-scoped database is one per backend anyway).
BY_BACKEND = frozenset({FUZZ_CAMPAIGN, LIFECYCLES, KILL, "tests/integration/test_cpq_kill.py"})
# The longest work units, handed out first so that no worker is left with one at the end
# (by `--durations` of a whole run on the 2-core machine); the rest go in collection order.
LONGEST_FIRST = (
    "tryton",
    f"{LIFECYCLES}[postgresql]",
    f"{FUZZ_CAMPAIGN}[sqlite]",
    f"{LIFECYCLES}[sqlite]",
    f"{KILL}[postgresql]",
    "tests/integration/test_cluster_kill.py",
    "tests/integration/test_console_exceptions.py",
    f"{KILL}[sqlite]",
    "tests/browser",
    f"{FUZZ_CAMPAIGN}[postgresql]",
)
_BACKEND = re.compile(r"\[(sqlite|postgresql)[\]-]")


def _scope(nodeid: str) -> str:
    """The work unit of a test: its file (module-scoped fixtures are built once), except the
    browser package (package-scoped console and browser), the Tryton files (above) and the
    files split by backend (above)."""
    path = nodeid.split("::", 1)[0]
    if path.startswith("tests/browser/"):
        return "tests/browser"
    if path in TRYTON_FILES:
        return "tryton"
    backend = _BACKEND.search(nodeid)
    if path in BY_BACKEND and backend:
        return f"{path}[{backend.group(1)}]"
    return path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    strays = sorted({item.nodeid.split("::", 1)[0] for item in items
                     if "tryton" in getattr(item, "fixturenames", ())} - TRYTON_FILES)
    if strays:
        raise pytest.UsageError(f"add {', '.join(strays)} to TRYTON_FILES in tests/conftest.py")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: one worker more than the cores. A test waits much of its time on other
    processes (PostgreSQL, trytond, localstripe, killed workers) and sockets: on the 2-core
    CI machine 3 workers ran the suite in 497 s, 2 in 825 s and 4 in 529 s."""
    return len(os.sched_getaffinity(0)) + 1


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadfile`, refined by `_scope`, longest units first."""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class Scheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _scope(nodeid)

        def _assign_work_unit(self, node: Any) -> None:
            """The longest unit left; but a worker still busy with a long one gets a short
            one: a worker is sent more work when it has two tests left or fewer (it runs a
            test only once it knows the next), and a long unit of one or two tests would
            otherwise hold a second long one back behind it."""
            busy = {_scope(nodeid) for nodeid, done in self._pending_items(node) if not done}
            if busy & set(LONGEST_FIRST):
                short = [scope for scope in self.workqueue if scope not in LONGEST_FIRST]
                if short:
                    self.workqueue.move_to_end(short[-1], last=False)
            else:
                for scope in LONGEST_FIRST:
                    if scope in self.workqueue:
                        self.workqueue.move_to_end(scope, last=False)
                        break
            super()._assign_work_unit(node)

        def _pending_items(self, node: Any) -> Iterator[tuple[str, bool]]:
            for unit in self.assigned_work[node].values():
                yield from unit.items()

    return Scheduling(config, log)


# The fuzz suite's counts (tests/fuzz/conftest.py `fuzz_report`), printed after the summary;
# under xdist each worker sends its own to the controller, which prints them all.
FUZZ_REPORT = pytest.StashKey[list[str]]()


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["finsync_fuzz_report"] = session.config.stash.get(FUZZ_REPORT, [])


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    lines = getattr(node, "workeroutput", {}).get("finsync_fuzz_report", [])
    node.config.stash.setdefault(FUZZ_REPORT, []).extend(lines)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter,
                            config: pytest.Config) -> None:
    lines = config.stash.get(FUZZ_REPORT, [])
    if lines:
        terminalreporter.section("finsync fuzz suite")
        for line in lines:
            terminalreporter.write_line(line)
