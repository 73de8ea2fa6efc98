"""The real-stack demo on real processes started here: `python -m tests.external.stack`
(what `python3 dev.py demo --stack stripe-tryton` runs; CI runs it too).

- localstripe, from its pinned, hashed virtualenv (`tests/stripekit.py`), on a free
  loopback port, state in memory;
- trytond, from its pinned, hashed virtualenv (`tests/external/tryton.py`), on PostgreSQL:
  a new database with finsync's modules activated (about 30 s), served on a free port;
- the hub's store: a new PostgreSQL database.

Then `finsync.demo.stack.run_stack` drives the year, the report is printed as `finsync demo
--stack` prints it, and the exit status is 0 only when the year reconciled to zero. Every
process started is stopped and every database made is dropped, also on failure.

PostgreSQL: `FINSYNC_TEST_PG_URL` (default `postgresql://postgres@127.0.0.1:5432/test`),
a role that may create databases. GPL processes: run, never imported.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import make_url

from finsync.demo.stack import run_stack
from finsync.demo.stack_config import StackSettings
from tests.external.tryton import ADMIN_PASSWORD, Postgres, TrytonServer, tryton_venv
from tests.stripekit import API_KEY, start_localstripe

KEY_ENV = "FINSYNC_DEMO_STRIPE_KEY"
PASSWORD_ENV = "FINSYNC_DEMO_TRYTON_PASSWORD"
PG_URL = os.environ.get("FINSYNC_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def postgres() -> Postgres:
    url = make_url(PG_URL)
    return Postgres(url.host or "127.0.0.1", url.port or 5432, url.username or "postgres")


@contextlib.contextmanager
def scratch_database(server: Postgres, prefix: str, template: str | None = None
                     ) -> Iterator[str]:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    server.create(name, template=template)
    try:
        yield name
    finally:
        server.drop(name)


@contextlib.contextmanager
def tryton_books(server: Postgres, workdir: Path) -> Iterator[tuple[str, str]]:
    """A new Tryton database with finsync's modules, served: (url, database)."""
    with scratch_database(server, "fs_stack_erp") as database:
        trytond = TrytonServer(tryton_venv(), server, workdir)
        trytond.admin(database)
        try:
            trytond.start((database,))
            trytond.load(database)
            yield trytond.url, database
        finally:
            trytond.stop()


@contextlib.contextmanager
def stack(workdir: Path, tryton: tuple[str, str] | None = None,
          server: Postgres | None = None) -> Iterator[StackSettings]:
    """localstripe, Tryton (`tryton`: one already served, else a new one) and an empty hub
    database; the environment holds the key and the password the settings name."""
    server = server or postgres()
    server.check()
    with contextlib.ExitStack() as stack_:
        localstripe = stack_.enter_context(contextlib.contextmanager(start_localstripe)(
            workdir))
        url, database = tryton or stack_.enter_context(tryton_books(server, workdir))
        hub = stack_.enter_context(scratch_database(server, "fs_stack_hub"))
        hub_url = make_url(PG_URL).set(database=hub).render_as_string(hide_password=False)
        os.environ[KEY_ENV] = API_KEY
        os.environ[PASSWORD_ENV] = ADMIN_PASSWORD
        yield StackSettings(localstripe.base_url, url, database, hub_url,
                            stripe_key_env=KEY_ENV, tryton_password_env=PASSWORD_ENV)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dev.py demo --stack stripe-tryton",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="stripe-tryton", choices=["stripe-tryton"])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--directory", type=Path, help="keep the demo's folder here")
    args = parser.parse_args(argv)
    from finsync.cli.demo import show_stack

    with tempfile.TemporaryDirectory(prefix="finsync-stack-processes-") as scratch, \
            stack(Path(scratch)) as settings:
        report = run_stack(settings, args.directory)
    show_stack(report, as_json=args.json)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
