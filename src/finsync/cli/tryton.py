"""`finsync tryton …`: set up a Tryton database as finsync's ERP.

`bootstrap` creates, on a database whose modules are activated (`trytond-admin -u
account_invoice account_product --activate-dependencies`), what finsync posts to: the
currencies, each company, its chart, the accounts the chart lacks, fiscal years with monthly
periods. It only adds what is missing: running it again changes nothing and says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from finsync.bootstrap import set_up_tryton_books
from finsync.cli import output
from finsync.cli.common import Json, guarded
from finsync.config import read_secret

app = typer.Typer(help="Tryton as finsync's ERP: set up its books.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Tryton as finsync's ERP: set up its books."""


@app.command("bootstrap")
def bootstrap_command(
        url: Annotated[str, typer.Option("--url", help="http://host:port of trytond.")],
        database: Annotated[str, typer.Option("--database", "-d")],
        company: Annotated[list[str] | None, typer.Option(
            "--company", help="Company (party) name; repeat for more.")] = None,
        currency: Annotated[str, typer.Option("--currency")] = "USD",
        year: Annotated[list[int] | None, typer.Option("--year", help="Fiscal year.")] = None,
        user: Annotated[str, typer.Option("--user")] = "admin",
        password_env: Annotated[str, typer.Option(
            "--password-env", help="Environment variable holding the password.")] =
        "FINSYNC_TRYTON_PASSWORD",
        password_file: Annotated[Path | None, typer.Option(
            "--password-file", help="A secret file holding the password (read instead of "
            "the environment variable when given).")] = None,
        as_json: Json = False) -> None:
    """Create what finsync posts to, if missing; idempotent."""
    with guarded(as_json):
        password = read_secret("the Tryton password", password_env, password_file).reveal()
        names = company or ["Acme US"]
        reports = set_up_tryton_books(url, database, user, password, names, currency,
                                      tuple(year or (2026, 2027)))
        companies = [{"company": name, "id": report.company_id, "created": report.created}
                     for name, report in zip(names, reports, strict=True)]
        if as_json:
            output.emit_json({"database": database, "changed": any(r.changed for r in reports),
                              "companies": companies})
            return
        for name, report in zip(names, reports, strict=True):
            output.table(f"{name} (company {report.company_id}) in {database}",
                         ["created"], [[c] for c in report.created] or [["nothing: all there"]])
