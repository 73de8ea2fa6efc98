"""`finsync tax`: ask the tax engine, manage exemption certificates, report the liability.

Rules:
- `quote` asks the configured tax engine (embedded or http) through the tax port, as
  billing does; nothing is written.
- `exemptions` and `liability` work on the embedded engine (with connector "http", run
  them where the engine runs, `finsync tax serve`'s configuration): certificates are
  master data (`admin`), the liability report is finance's (`finance:read`).
- `serve` runs the embedded engine as its own HTTP process (`admin` to start it); its
  callers need the bearer token held in `--token-env`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from finsync.auth.principal import ADMIN, FINANCE_READ
from finsync.bootstrap import build_engine, build_tax_port, build_tax_server, build_tax_service
from finsync.cli import output
from finsync.cli.common import ConfigPath, Json, authorised, day_or_today, embedded, guarded
from finsync.config import load_config
from finsync.domain.clock import parse_date
from finsync.domain.money import Money
from finsync.domain.tax import (
    TaxAddress,
    TaxDocumentKind,
    TaxRequest,
    TaxRequestLine,
    TaxResult,
)
from finsync.systems.tax.certificate import ExemptionCertificate

app = typer.Typer(help="The tax engine: quotes, exemption certificates, liability.",
                  no_args_is_help=True)
exemptions = typer.Typer(help="Customer exemption certificates.", no_args_is_help=True)
app.add_typer(exemptions, name="exemptions")

# The report's fields and their column headings.
LIABILITY_COLUMNS = {"jurisdiction": "jurisdiction", "currency": "cur",
                     "taxable_sales": "taxable", "exempt_sales": "exempt",
                     "not_taxable_sales": "not taxable", "reverse_charge_sales": "rev. charge",
                     "tax_charged": "charged", "tax_credited": "credited",
                     "net_tax_due": "due"}


@app.command()
def quote(country: Annotated[str, typer.Option(help="ISO 3166-1 country, e.g. US.")],
          amount: Annotated[str, typer.Option(help="The line's amount, e.g. 100.00.")],
          currency: Annotated[str, typer.Option()] = "USD",
          region: Annotated[str | None, typer.Option(help="ISO 3166-2 region, e.g. NY.")]
          = None,
          entity: Annotated[str, typer.Option(help="The selling legal entity.")] = "le_us",
          customer: Annotated[str, typer.Option()] = "cus_quote",
          tax_id: Annotated[str | None, typer.Option(help="The customer's VAT id.")] = None,
          tax_code: Annotated[str, typer.Option()] = "saas",
          inclusive: Annotated[bool, typer.Option(help="The amount includes tax.")] = False,
          on: Annotated[str | None, typer.Option(help="The document date (today).")] = None,
          config: ConfigPath = None, as_json: Json = False) -> None:
    """The tax of one line, as the configured tax engine answers billing."""
    with guarded(as_json):
        loaded = load_config(config)
        authorised(loaded, FINANCE_READ)
        request = TaxRequest("quote", TaxDocumentKind.INVOICE, entity, customer,
                             TaxAddress(country.upper(), region.upper() if region else None),
                             currency.upper(), day_or_today(on),
                             (TaxRequestLine("1", "product", tax_code,
                                             Money.of(amount, currency.upper()),
                                             inclusive),),
                             tax_id)
        engine = build_engine(loaded)
        try:
            result = build_tax_port(loaded, engine).quote(request)
        finally:
            engine.dispose()
        _show_quote(result, as_json)


def _show_quote(result: TaxResult, as_json: bool) -> None:
    rows = [{"line": line.line_id, "net": str(line.net.amount), "tax": str(line.tax.amount),
             "currency": line.tax.currency, "jurisdiction": d.jurisdiction,
             "tax_type": d.tax_type, "rate": str(d.rate), "treatment": d.treatment.value,
             "taxable": str(d.taxable.amount), "amount": str(d.amount.amount)}
            for line in result.lines for d in line.details]
    if as_json:
        output.emit_json({"lines": rows})
        return
    output.table("tax quote", ["net", "tax", "jurisdiction", "type", "rate", "treatment"],
                 [[r["net"], r["tax"], r["jurisdiction"], r["tax_type"], r["rate"],
                   r["treatment"]] for r in rows])


@exemptions.command("add")
def add(certificate_id: Annotated[str, typer.Argument(help="The certificate's id.")],
        customer: Annotated[str, typer.Option()],
        jurisdiction: Annotated[str, typer.Option(help="e.g. US-NY.")],
        valid_from: Annotated[str, typer.Option("--from", help="First valid day.")],
        valid_to: Annotated[str | None, typer.Option(
            "--to", help="First day no longer valid (open-ended if unset).")] = None,
        config: ConfigPath = None, as_json: Json = False) -> None:
    """Record a customer's exemption certificate, valid [from, to)."""
    with guarded(as_json), embedded(config, "tax", "tax engine", build_tax_service,
                                    ADMIN) as service:
        certificate = ExemptionCertificate(certificate_id, customer, jurisdiction,
                                           parse_date(valid_from),
                                           parse_date(valid_to) if valid_to else None)
        service.add_certificate(certificate)
        _show_certificates([certificate], as_json)


@exemptions.command("list")
def list_(customer: Annotated[str | None, typer.Option()] = None,
          config: ConfigPath = None, as_json: Json = False) -> None:
    """The exemption certificates (of one customer)."""
    with guarded(as_json), embedded(config, "tax", "tax engine", build_tax_service,
                                    FINANCE_READ) as service:
        _show_certificates(service.certificates(customer), as_json)


@exemptions.command("revoke")
def revoke(certificate_id: Annotated[str, typer.Argument(help="The certificate's id.")],
           config: ConfigPath = None, as_json: Json = False) -> None:
    """Revoke a certificate: documents quoted afterwards are taxed."""
    with guarded(as_json), embedded(config, "tax", "tax engine", build_tax_service,
                                    ADMIN) as service:
        service.revoke_certificate(certificate_id)
        if as_json:
            output.emit_json({"revoked": certificate_id})
            return
        output.console.print(f"revoked certificate {certificate_id}")


def _show_certificates(found: list[ExemptionCertificate], as_json: bool) -> None:
    rows = [{"id": c.id, "customer": c.customer_id, "jurisdiction": c.jurisdiction,
             "valid_from": c.valid_from.isoformat(),
             "valid_to": c.valid_to.isoformat() if c.valid_to else None,
             "revoked": c.revoked} for c in found]
    if as_json:
        output.emit_json({"certificates": rows})
        return
    output.table("exemption certificates",
                 ["id", "customer", "jurisdiction", "valid from", "valid to", "revoked"],
                 [[r["id"], r["customer"], r["jurisdiction"], r["valid_from"],
                   r["valid_to"] or "-", "yes" if r["revoked"] else ""] for r in rows])


@app.command()
def liability(entity: Annotated[str, typer.Option(help="The legal entity.")],
              period: Annotated[str, typer.Option(
                  help="A month YYYY-MM, a quarter YYYY-Qn or a year YYYY.")],
              config: ConfigPath = None, as_json: Json = False) -> None:
    """Tax owed per jurisdiction for a filing period, from the committed documents."""
    with guarded(as_json), embedded(config, "tax", "tax engine", build_tax_service,
                                    FINANCE_READ) as service:
        rows = [row.as_json() for row in service.liability(entity, period)]
        if as_json:
            output.emit_json({"entity": entity, "period": period, "jurisdictions": rows})
            return
        if not rows:
            output.console.print(f"no committed documents of {entity} in {period}")
            return
        output.table(f"tax liability {entity} {period} (sales net of credit memos)",
                     list(LIABILITY_COLUMNS.values()),
                     [[r[c] for c in LIABILITY_COLUMNS] for r in rows])


@app.command()
def serve(port: Annotated[int, typer.Option(min=1, max=65535)] = 8765,
          host: Annotated[str, typer.Option()] = "127.0.0.1",
          token_env: Annotated[str, typer.Option(
              help="The environment variable holding the bearer token callers must send.")]
          = "FINSYNC_TAX_TOKEN",
          config: ConfigPath = None) -> None:
    """Run the embedded tax engine as its own HTTP process (quote, commit, receipts), for
    `[systems.tax] connector = "http"` elsewhere."""
    import uvicorn

    with guarded(False):
        loaded = load_config(config)
        authorised(loaded, ADMIN)
        engine = build_engine(loaded)
        try:
            server = build_tax_server(loaded, engine, token_env)
            uvicorn.run(server, host=host, port=port, log_level="info")
        finally:
            engine.dispose()
