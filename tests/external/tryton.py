"""A real trytond for tests and benchmarks, run as separate processes (Tryton is GPL-3:
finsync never imports it).

- The virtualenv comes from the pinned, hashed `tryton-requirements.txt`, built once under
  `.cache/tryton-<hash>/` (gitignored), so a clean clone builds it once per run.
- Initialising a database takes over a minute, so a session makes ONE template database
  (modules activated, then `finsync tryton bootstrap` through a short-lived server), and
  each test gets a clone of it (`CREATE DATABASE … TEMPLATE`, well under a second). The
  server that serves the clones never opens the template, else cloning would be refused.
- The module activation (`trytond-admin`, 40 s on a quiet 2-core machine, 90-180 s in a
  whole-suite run) depends on nothing but the pinned packages and what it is asked (the
  modules, the admin's password: the database's name holds their hash), so its result is kept
  across sessions as the database `fs_tryton_base_<hash>`, like the virtualenv: a session
  copies it and bootstraps the copy (a few seconds). The bootstrap, which is finsync's
  code, still runs in every session. Drop that database to make it again.
- `FINSYNC_TRYTON_TEMPLATE=<db>` reuses a template made by an earlier session (kept, not
  dropped): for iterating on one test, never in CI.
- A database is loaded (`GET /<db>/r/x`) before the first login: a failed login to an
  unloaded database leaves it broken until the server restarts.

Stdlib and psycopg only, so that bench/tryton.py can use it without pytest.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import venv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = Path(__file__).with_name("tryton-requirements.txt")
CACHE = ROOT / ".cache"
MODULES = ("account_invoice", "account_product")
ADMIN_PASSWORD = "admin"  # a throwaway test database's admin; never a real secret
START_TIMEOUT_S = 60.0
LOAD_TIMEOUT_S = 180.0  # a database's first load (`TrytonServer.load`)
CREATE_ATTEMPTS = 20  # some 50 s of waits for a template another session is copying


class TrytonUnavailableError(RuntimeError):
    """Tryton cannot run here (no PostgreSQL, install failed, server did not start)."""


def _pinned_digest() -> str:
    """What the cached virtualenv and activated database are made from."""
    return hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:16]


def _activation_digest() -> str:
    """What the kept activated database is made from: the pinned packages, and what
    `TrytonServer.admin` asks of them (the modules, the admin's password)."""
    made_of = (REQUIREMENTS.read_bytes() + repr((MODULES, ADMIN_PASSWORD)).encode())
    return hashlib.sha256(made_of).hexdigest()[:16]


def tryton_venv() -> Path:
    """The cached virtualenv holding trytond, built on first use (hashes checked)."""
    digest = _pinned_digest()
    home = CACHE / f"tryton-{digest}"
    ready = home / ".ready"
    if ready.exists():
        return home
    CACHE.mkdir(exist_ok=True)
    with open(CACHE / f"tryton-{digest}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two sessions at once build it once
        if ready.exists():
            return home
        shutil.rmtree(home, ignore_errors=True)
        venv.create(home, with_pip=True)
        result = subprocess.run(
            [str(home / "bin" / "python"), "-m", "pip", "install", "-q",
             "--disable-pip-version-check", "--require-hashes", "-r", str(REQUIREMENTS)],
            capture_output=True, text=True)
        if result.returncode != 0:
            raise TrytonUnavailableError(f"installing trytond failed: {result.stderr[-2000:]}")
        ready.write_text(digest)
    return home


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Postgres:
    """The PostgreSQL server Tryton stores its databases in (a role that may create them)."""

    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "postgres"
    # False: commits on the databases it creates do not wait for their WAL flush (the
    # tests: what any connection sees is the same, only a crash of the server itself could
    # lose the last commits); the benchmarks keep the server's own setting.
    synchronous_commit: bool = True

    @property
    def uri(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/"

    def _admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(host=self.host, port=self.port, user=self.user,
                               dbname="postgres", autocommit=True, connect_timeout=5)

    def check(self) -> None:
        try:
            self._admin().close()
        except psycopg.OperationalError as exc:
            raise TrytonUnavailableError(f"PostgreSQL is not reachable: {exc}") from exc

    def create(self, name: str, template: str | None = None,
               attempts: int = CREATE_ATTEMPTS) -> None:
        """CREATE DATABASE copies its template (template1 by default) and is refused while
        another session is in it (another test session creating its own database): wait
        and try again rather than fail."""
        clause = f' TEMPLATE "{template}"' if template else ""
        with self._admin() as conn:
            for attempt in range(attempts):
                try:
                    conn.execute(f'CREATE DATABASE "{name}"{clause}'.encode())
                    break
                except psycopg.errors.ObjectInUse:
                    if attempt == attempts - 1:
                        raise
                    time.sleep(0.25 + 0.25 * attempt)
            if not self.synchronous_commit:  # a setting of the database: a clone lacks it
                conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off'.encode())

    def drop(self, name: str) -> None:
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())

    def exists(self, name: str) -> bool:
        with self._admin() as conn:
            row = conn.execute(b"SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            return row.fetchone() is not None

    def rename(self, name: str, new_name: str) -> None:
        with self._admin() as conn:
            conn.execute(f'ALTER DATABASE "{name}" RENAME TO "{new_name}"'.encode())


@dataclass
class TrytonServer:
    """One trytond process on 127.0.0.1:`port`; `kill` and `start` again at will."""

    home: Path
    postgres: Postgres
    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config(self) -> Path:
        path = self.workdir / f"trytond-{self.port}.conf"
        if not path.exists():
            self.workdir.mkdir(parents=True, exist_ok=True)
            (self.workdir / "data").mkdir(exist_ok=True)
            path.write_text(f"[database]\nuri = {self.postgres.uri}\n"
                            f"path = {self.workdir / 'data'}\n"
                            f"[web]\nlisten = 127.0.0.1:{self.port}\n")
        return path

    def admin(self, database: str) -> None:
        """Activate finsync's modules on an empty database (the slow part: about a minute)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        password = self.workdir / "admin-password"
        password.write_text(ADMIN_PASSWORD)
        env = {**os.environ, "TRYTONPASSFILE": str(password)}
        result = subprocess.run(
            [str(self.home / "bin" / "trytond-admin"), "-c", str(self.config), "-d", database,
             "-u", *MODULES, "--activate-dependencies", "--email", "admin@example.com"],
            env=env, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise TrytonUnavailableError(f"trytond-admin failed: {result.stderr[-2000:]}")

    def start(self, databases: tuple[str, ...] = ()) -> None:
        """Start; `databases` are loaded before the port opens (a restart mid-traffic must
        not let a login reach an unloaded database)."""
        config = self.config  # makes the working folder too
        log = open(self.workdir / f"trytond-{self.port}.log", "ab")  # noqa: SIM115 - child's
        self.process = subprocess.Popen(
            [str(self.home / "bin" / "trytond"), "-c", str(config),
             *(("-d", *databases) if databases else ())],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise TrytonUnavailableError(f"trytond exited with {self.process.returncode}")
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.port), timeout=0.5):
                return
            time.sleep(0.1)
        self.stop()
        raise TrytonUnavailableError(f"trytond did not listen on {self.port}")

    def load(self, database: str) -> None:
        """Make the server load `database` before anyone logs in to it (answers 404).

        trytond answers from a database list it caches per host name for the session
        timeout (5 min), so a clone made after the first load would be "not found": a host
        name of its own makes the server list the databases afresh."""
        request = urllib.request.Request(f"{self.url}/{database}/r/x",
                                         headers={"Host": f"h{uuid.uuid4().hex}.localhost"})
        try:
            # A fresh copy's first load reads every module's data: over 60 s on a loaded
            # 2-core machine (seen timing out in a whole-suite run).
            urllib.request.urlopen(request, timeout=LOAD_TIMEOUT_S).close()
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                raise

    def kill(self) -> None:
        """SIGKILL: no goodbye, as when a machine dies."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None


@dataclass
class TrytonSite:
    """A template database and the server serving clones of it."""

    postgres: Postgres
    server: TrytonServer
    template: str
    clones: list[str] = field(default_factory=list)

    def clone(self) -> str:
        name = f"{self.template}_c{uuid.uuid4().hex[:8]}"
        self.postgres.create(name, template=self.template)
        self.clones.append(name)
        self.server.load(name)
        return name

    def discard(self, name: str) -> None:
        """Drop a clone once its test is done: trytond keeps a pool of connections to every
        database it served, and a session's clones would exhaust PostgreSQL's clients."""
        with contextlib.suppress(psycopg.Error):
            self.postgres.drop(name)
        self.clones.remove(name)

    def close(self, keep_template: bool = False) -> None:
        self.server.stop()
        for name in (*self.clones, *(() if keep_template else (self.template,))):
            with contextlib.suppress(psycopg.Error):
                self.postgres.drop(name)


def activated_database(postgres: Postgres, home: Path, workdir: Path) -> str:
    """The name of a database with finsync's modules activated and nothing else, kept
    across sessions (see the module's docstring); made here if missing.

    Sessions at once (other checkouts share the PostgreSQL server) each build under a name
    of their own, and the first to rename it under the shared name wins: a half-built
    database never carries that name, since trytond-admin must succeed first."""
    name = f"fs_tryton_base_{_activation_digest()}"
    if postgres.exists(name):
        return name
    building = f"{name}_{uuid.uuid4().hex[:8]}"
    postgres.create(building)
    try:
        TrytonServer(home, postgres, workdir).admin(building)
        with contextlib.suppress(psycopg.errors.DuplicateDatabase):
            postgres.rename(building, name)
    finally:
        postgres.drop(building)  # left only when another session renamed its own first
    return name


@contextlib.contextmanager
def tryton_site(workdir: Path, bootstrap: Callable[[str, str], object],
                postgres: Postgres | None = None) -> Iterator[TrytonSite]:
    """A template database initialised and bootstrapped once, and a running server for its
    clones; everything dropped and stopped at the end. `bootstrap(url, database)` sets the
    books up (finsync's `tryton bootstrap`)."""
    postgres = postgres or Postgres()
    postgres.check()
    home = tryton_venv()
    prebuilt = os.environ.get("FINSYNC_TRYTON_TEMPLATE")
    template = prebuilt or f"fs_tryton_{os.getpid()}"
    setup = TrytonServer(home, postgres, workdir)
    site = TrytonSite(postgres, TrytonServer(home, postgres, workdir), template)
    try:
        if not prebuilt:
            postgres.drop(template)
            postgres.create(template, template=activated_database(postgres, home, workdir))
            setup.start()
            setup.load(template)
            bootstrap(setup.url, template)
            setup.stop()  # the template is never opened again
        site.server.start()
        yield site
    finally:
        setup.stop()
        site.close(keep_template=bool(prebuilt))


def main() -> None:
    """`python -m tests.external.tryton`: build the virtualenv (CI warm-up, debugging)."""
    print(tryton_venv(), file=sys.stderr)


if __name__ == "__main__":
    main()
