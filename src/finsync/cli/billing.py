"""`finsync billing …`: the embedded subscription platform (customers, subscriptions,
amendments, usage, payments, credits, refunds, the billing clock and invoices).

Every command runs one billing command in one transaction (the state and the outbox of
canonical events commit together) and prints what it issued: one JSON object with `--json`
(each document in its canonical shape, as the hub reads it), Rich tables otherwise. A refused
command prints its error and exits non-zero; nothing changes. The billing service comes from
the configuration (`--config`), with `--database` and `--catalog` put in place of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy.exc import SQLAlchemyError

from finsync.auth.principal import FINANCE_READ, events_write
from finsync.bootstrap import build_billing_service, build_engine
from finsync.cli import output
from finsync.cli.common import ConfigPath, Json, authorised, guarded
from finsync.config import FinsyncConfig, load_config
from finsync.domain import codec
from finsync.domain.catalog import BillingFrequency
from finsync.domain.clock import parse_date
from finsync.domain.contract import ContractLine, SubscriptionContract
from finsync.domain.invoice import CreditMemo, Invoice, UsageRecord
from finsync.domain.money import Money
from finsync.domain.party import CustomerAccount
from finsync.systems.billing.amendment import AmendSubscription
from finsync.systems.billing.cancellation import CancelMode, CancelSubscription
from finsync.systems.billing.credit import CreditReason, IssueCreditMemo
from finsync.systems.billing.cycle import add_months
from finsync.systems.billing.edit import (
    AddProduct,
    AddSeats,
    ChangeBillingFrequency,
    Edit,
    RemoveProduct,
    RemoveSeats,
)
from finsync.systems.billing.errors import BillingStorageError, InvalidCommandError
from finsync.systems.billing.event import Emitted
from finsync.systems.billing.handler import Command, RecordUsage, RegisterCustomer, RunClock
from finsync.systems.billing.held import RetryHeldInvoices
from finsync.systems.billing.one_off import ChargeOneOff
from finsync.systems.billing.payment import PayInvoice, PaymentResult, RefundPayment
from finsync.systems.billing.service import Applied, BillingService, InvoiceSummary
from finsync.systems.billing.subscription import CreateSubscription

app = typer.Typer(help="The embedded billing platform: subscriptions, invoices, payments.",
                  no_args_is_help=True)
customer_app = typer.Typer(help="Billing customers.", no_args_is_help=True)
app.add_typer(customer_app, name="customer")

Database = Annotated[str | None, typer.Option(
    "--database", help="Database URL (default: the configuration's).")]
CatalogFile = Annotated[Path | None, typer.Option(
    "--catalog", help="Billing catalogue TOML (default: the configuration's, else the "
                      "shipped default_catalog.toml).")]
On = Annotated[str, typer.Option("--on", help="Business date, ISO (2026-05-16).")]


# -- plumbing -----------------------------------------------------------------------------
# Changing the embedded billing platform makes the events source `billing` sends: the same
# scope as posting them. Reading invoices needs finance:read.
WRITE = events_write("billing")


@dataclass(frozen=True, slots=True)
class Where:
    """Which configuration, database and catalogue a command runs on."""

    config: Path | None
    database: str | None
    catalog: Path | None


def _configured(where: Where, scope: str) -> FinsyncConfig:
    """The configuration with this command's `--catalog` in place, for a principal holding
    `scope`."""
    config = load_config(where.config)
    authorised(config, scope)
    if where.catalog is not None:
        catalog = str(where.catalog.resolve())  # a path on the command line: from here
        systems = {name: system.model_copy(update={"catalog": catalog})
                   if system.role == "billing" else system
                   for name, system in config.systems.items()}
        config = config.model_copy(update={"systems": systems})
    return config


@contextmanager
def _service(where: Where, scope: str = WRITE) -> Iterator[BillingService]:
    config = _configured(where, scope)
    try:
        engine = build_engine(config, where.database)
    except (SQLAlchemyError, ValueError, OSError) as exc:
        raise BillingStorageError(f"cannot open billing database: {exc}") from exc
    try:
        yield build_billing_service(config, engine)
    except SQLAlchemyError as exc:
        raise BillingStorageError(f"billing database error: {exc}") from exc
    finally:
        engine.dispose()


def _execute(name: str, where: Where, as_json: bool,
             build: Callable[[BillingService], Command]) -> None:
    with guarded(as_json), _service(where) as service:
        applied = service.execute(build(service))
        _report(name, applied, as_json)


def _day(text: str) -> date:
    return parse_date(text)


def _money(amount: str, currency: str) -> Money:
    return Money.of(amount, currency)


def _split(text: str, sep: str, what: str) -> tuple[str, str]:
    left, found, right = text.partition(sep)
    if not found or not left or not right:
        raise InvalidCommandError(f"{what} must look like {what.upper()}, not {text!r}")
    return left, right


def _count(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InvalidCommandError(f"{what} must be a whole number, not {text!r}") from None


def _line_spec(text: str) -> tuple[str, str, int]:
    """`LINE=PRICE[:QTY]` (quantity 1 when left out)."""
    line_id, rest = _split(text, "=", "line=price[:qty]")
    price_id, _, quantity = rest.partition(":")
    return line_id, price_id, _count(quantity, "quantity") if quantity else 1


def _seats(text: str) -> tuple[str, int]:
    line_id, seats = _split(text, ":", "line:seats")
    return line_id, _count(seats, "seats")


# -- output -------------------------------------------------------------------------------
def _event(e: Emitted) -> dict[str, Any]:
    return {"type": e.event.name.value, "correlation_id": e.correlation_id,
            "aggregate": {"type": e.aggregate.type, "id": e.aggregate.id,
                          "version": e.aggregate.version},
            "document": codec.encode(e.event.document)}


def _report(name: str, applied: Applied, as_json: bool) -> None:
    if as_json:
        output.emit_json({"command": name, "revision": applied.revision,
                          "outbox": len(applied.outbox_seqs),
                          "events": [_event(e) for e in applied.emitted]})
        return
    if not applied.emitted:
        output.console.print(f"{name}: done, nothing issued")
        return
    output.table(f"{name}: events", ["type", "object", "version", "correlation"],
                 [[e.event.name.value, getattr(e.event.document, "number", e.aggregate.id),
                   e.aggregate.version, e.correlation_id]
                  for e in applied.emitted])
    for e in applied.emitted:
        doc = e.event.document
        if isinstance(doc, Invoice | CreditMemo):
            output.table(f"{doc.number}  {doc.issue_date}  total {doc.total}",
                         ["line", "description", "service", "amount", "tax"],
                         [[x.line_id, x.description, f"[{x.service_start}, {x.service_end})",
                           x.amount.amount, x.tax_amount.amount] for x in doc.lines])


def _summary(s: InvoiceSummary) -> dict[str, Any]:
    return {"id": s.id, "number": s.number, "customer_id": s.customer_id,
            "contract_id": s.contract_id, "contract_version": s.contract_version,
            "issue_date": s.issue_date.isoformat(), "due_date": s.due_date.isoformat(),
            "correlation_id": s.correlation_id, "currency": s.total.currency,
            "subtotal": str(s.subtotal.amount), "tax_total": str(s.tax_total.amount),
            "total": str(s.total.amount), "credited": str(s.credited.amount),
            "paid": str(s.paid.amount), "amount_due": str(s.amount_due.amount)}


# -- commands -----------------------------------------------------------------------------
@customer_app.command("add")
def customer_add(customer_id: str, name: Annotated[str, typer.Option("--name")],
                 legal_entity: Annotated[str, typer.Option("--legal-entity")] = "le_us",
                 currency: Annotated[str, typer.Option("--currency")] = "USD",
                 country: Annotated[str, typer.Option("--country")] = "US",
                 region: Annotated[str | None, typer.Option(
                     "--region", help="ISO 3166-2 subdivision where the country taxes by "
                                      "region (a US state: NY).")] = None,
                 tax_id: Annotated[str | None, typer.Option(
                     "--tax-id", help="VAT id (B2B reverse charge).")] = None,
                 database: Database = None, catalog: CatalogFile = None, config: ConfigPath = None,
                 as_json: Json = False) -> None:
    """Register (or update) a customer: legal entity, currency, billing country and region,
    VAT id."""
    _execute("customer add", Where(config, database, catalog), as_json, lambda _: RegisterCustomer(
        CustomerAccount(customer_id, name, legal_entity, currency, country,
                        billing_region=region, tax_id=tax_id)))


@app.command()
def subscribe(contract_id: str, customer: Annotated[str, typer.Option("--customer")],
              start: Annotated[str, typer.Option("--start", help="First day, ISO.")],
              line: Annotated[list[str], typer.Option(
                  "--line", help="LINE=PRICE[:QTY], repeatable.")],
              months: Annotated[int, typer.Option("--months", help="Term length.")] = 12,
              frequency: Annotated[BillingFrequency, typer.Option("--frequency")] =
              BillingFrequency.ANNUAL,
              currency: Annotated[str | None, typer.Option(
                  "--currency", help="Default: the customer's.")] = None,
              order: Annotated[str | None, typer.Option(
                  "--order", help="Correlation id (the order).")] = None,
              usage_frequency: Annotated[BillingFrequency | None, typer.Option(
                  "--usage-frequency", help="Rating period of usage and arrears lines "
                                            "(default: the billing frequency).")] = None,
              auto_renew: Annotated[bool, typer.Option("--auto-renew/--no-auto-renew")] = True,
              database: Database = None, catalog: CatalogFile = None, config: ConfigPath = None,
              as_json: Json = False) -> None:
    """Create a subscription (contract version 1) and invoice its first cycle."""
    def build(service: BillingService) -> Command:
        first = _day(start)
        end = add_months(first, months)
        buyer = service.customer(customer)
        code = currency or buyer.currency
        lines = tuple(_contract_line(service, spec, code, first, end) for spec in line)
        contract = SubscriptionContract(contract_id, buyer.id, buyer.legal_entity, code,
                                        first, end, frequency, lines)
        return CreateSubscription(contract, order, auto_renew, usage_frequency, months)

    _execute("subscribe", Where(config, database, catalog), as_json, build)


def _contract_line(service: BillingService, spec: str, currency: str, start: date,
                   end: date) -> ContractLine:
    line_id, price_id, quantity = _line_spec(spec)
    plan = service.config.catalog.plan(price_id)
    unit = plan.price.unit_amount
    return ContractLine(line_id, plan.price.product_id, price_id, quantity,
                        Money(unit.amount, currency), start, end)


@app.command()
def amend(contract_id: str, amendment_id: Annotated[str, typer.Option("--id")], on: On,
          add_seats: Annotated[list[str] | None, typer.Option(
              "--add-seats", help="LINE:N")] = None,
          remove_seats: Annotated[list[str] | None, typer.Option(
              "--remove-seats", help="LINE:N")] = None,
          add_product: Annotated[list[str] | None, typer.Option(
              "--add-product", help="LINE=PRICE[:QTY], co-terminated.")] = None,
          remove_product: Annotated[list[str] | None, typer.Option(
              "--remove-product", help="LINE")] = None,
          frequency: Annotated[BillingFrequency | None, typer.Option("--frequency")] = None,
          reason: Annotated[str, typer.Option("--reason")] = "amendment",
          database: Database = None, catalog: CatalogFile = None, config: ConfigPath = None,
          as_json: Json = False) -> None:
    """Amend a subscription (version n+1): prorated invoice for upgrades, credit for
    downgrades."""
    edits: list[Edit] = [AddSeats(*_seats(x)) for x in add_seats or []]
    edits += [RemoveSeats(*_seats(x)) for x in remove_seats or []]
    for spec in add_product or []:
        line_id, price_id, quantity = _line_spec(spec)
        edits.append(AddProduct(line_id, price_id, quantity))
    edits += [RemoveProduct(x) for x in remove_product or []]
    if frequency is not None:
        edits.append(ChangeBillingFrequency(frequency))
    _execute("amend", Where(config, database, catalog), as_json, lambda _: AmendSubscription(
        amendment_id, contract_id, _day(on), tuple(edits), reason))


@app.command()
def cancel(contract_id: str, cancellation_id: Annotated[str, typer.Option("--id")], on: On,
           mode: Annotated[CancelMode, typer.Option("--mode")] = CancelMode.AT_TERM_END,
           database: Database = None, catalog: CatalogFile = None, config: ConfigPath = None,
           as_json: Json = False) -> None:
    """Cancel a subscription at term end, or at once with or without a refund."""
    _execute("cancel", Where(config, database, catalog), as_json, lambda _: CancelSubscription(
        cancellation_id, contract_id, _day(on), mode))


@app.command()
def usage(contract_id: str, record_id: Annotated[str, typer.Option("--id")],
          product: Annotated[str, typer.Option("--product")],
          quantity: Annotated[int, typer.Option("--quantity")], on: On,
          database: Database = None, catalog: CatalogFile = None, config: ConfigPath = None,
          as_json: Json = False) -> None:
    """Record usage (idempotent by its id); it is rated at the period end by `run`."""
    _execute("usage", Where(config, database, catalog), as_json, lambda _: RecordUsage(
        UsageRecord(record_id, contract_id, product, quantity, _day(on))))


def _invoice_id(service: BillingService, ref: str) -> str:
    return service.find_invoice(ref) or ref  # unknown: the core names it in its error


@app.command()
def pay(invoice: Annotated[str, typer.Argument(help="Invoice id or number.")],
        payment_id: Annotated[str, typer.Option("--id")],
        amount: Annotated[str, typer.Option("--amount")], on: On,
        currency: Annotated[str | None, typer.Option(
            "--currency", help="Default: the invoice's.")] = None,
        declined: Annotated[str | None, typer.Option(
            "--declined", help="Record a declined attempt with this reason.")] = None,
        database: Database = None, catalog: CatalogFile = None, config: ConfigPath = None,
        as_json: Json = False) -> None:
    """Apply a payment to an invoice (full or partial), or record a declined one."""
    def build(service: BillingService) -> Command:
        invoice_id = _invoice_id(service, invoice)
        code = currency or service.invoice_record(invoice_id).invoice.currency
        result = PaymentResult.DECLINED if declined else PaymentResult.SUCCEEDED
        return PayInvoice(payment_id, invoice_id, _money(amount, code), _day(on), result,
                          declined or "")

    _execute("pay", Where(config, database, catalog), as_json, build)


@app.command()
def credit(invoice: Annotated[str, typer.Argument(help="Invoice id or number.")],
           reason: Annotated[CreditReason, typer.Option("--reason")], on: On,
           amount: Annotated[str | None, typer.Option(
               "--amount", help="Before tax; default: all that is left.")] = None,
           correlation: Annotated[str | None, typer.Option(
               "--correlation", help="Correlation id (e.g. the SLA case).")] = None,
           database: Database = None, catalog: CatalogFile = None, config: ConfigPath = None,
           as_json: Json = False) -> None:
    """Issue a credit memo on an invoice (SLA credit, goodwill, refund, downgrade)."""
    def build(service: BillingService) -> Command:
        invoice_id = _invoice_id(service, invoice)
        code = service.invoice_record(invoice_id).invoice.currency
        credit_amount = _money(amount, code) if amount is not None else None
        return IssueCreditMemo(invoice_id, reason, _day(on), credit_amount, correlation)

    _execute("credit", Where(config, database, catalog), as_json, build)


@app.command()
def refund(payment: Annotated[str, typer.Argument(help="Payment id.")],
           refund_id: Annotated[str, typer.Option("--id")],
           amount: Annotated[str, typer.Option("--amount")], on: On,
           reason: Annotated[str, typer.Option("--reason")] = "requested_by_customer",
           database: Database = None, catalog: CatalogFile = None, config: ConfigPath = None,
           as_json: Json = False) -> None:
    """Refund part or all of a payment."""
    def build(service: BillingService) -> Command:
        code = service.payment(payment).amount.currency
        return RefundPayment(refund_id, payment, _money(amount, code), _day(on), reason)

    _execute("refund", Where(config, database, catalog), as_json, build)


@app.command()
def run(until: Annotated[str, typer.Option("--until", help="ISO date.")],
        database: Database = None, catalog: CatalogFile = None, config: ConfigPath = None,
        as_json: Json = False) -> None:
    """Run the billing clock to DATE: cycles billed, usage rated, terms renewed."""
    _execute("run", Where(config, database, catalog), as_json, lambda _: RunClock(_day(until)))


@app.command()
def charge(contract_id: str, charge_id: Annotated[str, typer.Option("--id")],
           price: Annotated[str, typer.Option("--price", help="A one-off price.")], on: On,
           quantity: Annotated[int, typer.Option("--quantity")] = 1,
           database: Database = None, catalog: CatalogFile = None, config: ConfigPath = None,
           as_json: Json = False) -> None:
    """Charge a one-off price on a subscription (invoiced at once)."""
    _execute("charge", Where(config, database, catalog), as_json, lambda _: ChargeOneOff(
        charge_id, contract_id, price, quantity, _day(on)))


@app.command("retry-held")
def retry_held(draft: Annotated[str | None, typer.Argument(
                   help="Held invoice id; default: every invoice still held.")] = None,
               database: Database = None, catalog: CatalogFile = None,
               config: ConfigPath = None, as_json: Json = False) -> None:
    """Ask the tax engine again for held invoices: issued when it answers."""
    _execute("retry-held", Where(config, database, catalog), as_json,
             lambda _: RetryHeldInvoices(draft))


@app.command()
def held(released: Annotated[bool, typer.Option(
             "--released", help="Released ones too.")] = False,
         database: Database = None, catalog: CatalogFile = None, config: ConfigPath = None,
         as_json: Json = False) -> None:
    """Invoices held because their tax could not be computed (money at stake, cause)."""
    with guarded(as_json), _service(Where(config, database, catalog),
                                    FINANCE_READ) as service:
        drafts = service.held(released=released)
        if as_json:
            output.emit_json({"held": [codec.encode(h) for h in drafts]})
            return
        output.table("held invoices", ["id", "customer", "contract", "dated", "subtotal",
                                       "code", "transient", "invoice"],
                     [[h.id, h.customer_id, h.contract_id or "", h.issue_date, str(h.subtotal),
                       h.code, "yes" if h.transient else "no", h.invoice_id or ""]
                      for h in drafts])


@app.command()
def invoices(customer: Annotated[str | None, typer.Option("--customer")] = None,
             contract: Annotated[str | None, typer.Option("--contract")] = None,
             database: Database = None, catalog: CatalogFile = None, config: ConfigPath = None,
             as_json: Json = False) -> None:
    """Issued invoices with what was credited, paid and is still due."""
    with guarded(as_json), _service(Where(config, database, catalog),
                                    FINANCE_READ) as service:
        rows = [_summary(s) for s in service.invoices(customer_id=customer,
                                                       contract_id=contract)]
        if as_json:
            output.emit_json({"invoices": rows})
            return
        output.table("invoices", ["number", "contract", "issued", "total", "credited",
                                  "paid", "due", "correlation"],
                     [[r["number"], f"{r['contract_id']} v{r['contract_version']}",
                       r["issue_date"], f"{r['total']} {r['currency']}", r["credited"],
                       r["paid"], r["amount_due"], r["correlation_id"]] for r in rows])
