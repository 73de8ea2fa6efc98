"""`finsync ledger …`: the embedded ledger's reports and period control.

Reports need `finance:read`; closing a period and the exchange-rate table `periods:manage`.
Reopening a period takes two people (`finsync.controls.period`): `ledger reopen` asks,
`ledger reopen-approve ID` (another principal, with `periods:manage` and
`exceptions:approve`) opens it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy import Engine

from finsync.auth.principal import FINANCE_READ, PERIODS_MANAGE, PII_READ, Principal
from finsync.bootstrap import build_ledger_service, build_period_control
from finsync.cli import output
from finsync.cli.common import ConfigPath, Json, RowId, acting, day_or_today, embedded, guarded
from finsync.config import ConfigError, FinsyncConfig, load_config
from finsync.controls.period import PeriodControl
from finsync.controls.request import Request
from finsync.systems.ledger.fx import Rate
from finsync.systems.ledger.service import LedgerService

app = typer.Typer(help="The embedded ledger: reports, periods, rates, export.",
                  no_args_is_help=True)

Entity = Annotated[str | None, typer.Option("--entity", "-e", help="Legal entity id.")]
AsOf = Annotated[str | None, typer.Option("--as-of", help="ISO date (default: today).")]


def _ledger(config: Path | None,
            scope: str = FINANCE_READ) -> AbstractContextManager[LedgerService]:
    return embedded(config, "ledger", "ledger", build_ledger_service, scope)


@contextmanager
def _periods(config: Path | None) -> Iterator[tuple[PeriodControl, Principal]]:
    """Period control on the embedded ledger, and who acts (each call checks its scope)."""
    with embedded(config, "ledger", "ledger", _with_principal, PERIODS_MANAGE) as pair:
        yield pair


def _with_principal(config: FinsyncConfig, engine: Engine) -> tuple[PeriodControl, Principal]:
    return build_period_control(config, engine), acting(config)


def _entities(ledger: LedgerService, entity: str | None) -> list[str]:
    known = [e for e, _ in ledger.entities()]
    if entity is not None and entity not in known:
        raise ConfigError(f"unknown legal entity {entity!r}; known: {', '.join(known)}")
    return [entity] if entity else known


@app.command("trial-balance")
def trial_balance(entity: Entity = None, as_of: AsOf = None, config: ConfigPath = None,
                  as_json: Json = False) -> None:
    """Debit, credit and balance per account; the balances sum to zero per entity."""
    with guarded(as_json), _ledger(config) as ledger:
        day = day_or_today(as_of)
        result: dict[str, Any] = {}
        for e in _entities(ledger, entity):
            rows = ledger.trial_balance(e, day)
            result[e] = {"as_of": day.isoformat(), "accounts": [
                {"account": r.account, "name": r.name, "type": r.type,
                 "debit": str(r.debit.amount), "credit": str(r.credit.amount),
                 "balance": str(r.balance.amount)} for r in rows],
                "total": str(sum((r.balance.amount for r in rows), Decimal(0)))}
        if as_json:
            output.emit_json(result)
            return
        for e, data in result.items():
            output.table(f"trial balance {e} at {data['as_of']} (total {data['total']})",
                         ["account", "name", "debit", "credit", "balance"],
                         [[a["account"], a["name"], a["debit"], a["credit"], a["balance"]]
                          for a in data["accounts"]])


@app.command()
def gl(account: Annotated[str, typer.Option("--account", "-a")], entity: Entity = None,
       config: ConfigPath = None, as_json: Json = False) -> None:
    """Every line posted to ACCOUNT, with a running balance."""
    with guarded(as_json), _ledger(config) as ledger:
        result = {e: ledger.general_ledger(e, account) for e in _entities(ledger, entity)}
        if as_json:
            output.emit_json({"account": account, "entities": result})
            return
        for e, rows in result.items():
            output.table(f"{e} account {account}", ["date", "memo", "side", "amount", "balance"],
                         [[r["date"], r["memo"], r["side"], r["amount"], r["balance"]]
                          for r in rows])


@app.command()
def aging(entity: Entity = None, as_of: AsOf = None, config: ConfigPath = None,
          as_json: Json = False) -> None:
    """Open receivables per customer by days past due; the subledgers beside their controls."""
    with guarded(as_json), _ledger(config) as ledger:
        day = day_or_today(as_of)
        result: dict[str, dict[str, Any]] = {
            e: {"as_of": day.isoformat(), "customers": ledger.aging(e, day),
                "subledgers": ledger.subledger_check(e, day)}
            for e in _entities(ledger, entity)}
        if as_json:
            output.emit_json(result)
            return
        for e, data in result.items():
            output.table(f"AR aging {e} at {data['as_of']}",
                         ["customer", "current", "1-30", "31-60", "61-90", "90+", "credits",
                          "total"],
                         [[c["customer"], c["current"], c["1-30"], c["31-60"], c["61-90"],
                           c["90+"], c["credits"], c["total"]] for c in data["customers"]])
            output.table(f"subledgers {e}", ["control", "subledger", "GL", "difference"],
                         [[k, v["subledger"], v["control"], v["difference"]]
                          for k, v in data["subledgers"].items()])


@app.command()
def periods(entity: Entity = None, config: ConfigPath = None, as_json: Json = False) -> None:
    """Accounting periods and their status."""
    with guarded(as_json), _ledger(config) as ledger:
        rows = [{**asdict(p), "start": p.start.isoformat(), "end": p.end.isoformat(),
                 "status": p.status.value} for p in ledger.periods(entity)]
        if as_json:
            output.emit_json({"periods": rows})
            return
        output.table("accounting periods", ["entity", "period", "from", "until", "status"],
                     [[r["legal_entity"], r["name"], r["start"], r["end"], r["status"]]
                      for r in rows])


Period = Annotated[str, typer.Option("--period", "-p", help="YYYY-MM")]
EntityRequired = Annotated[str, typer.Option("--entity", "-e")]
Note = Annotated[str, typer.Option("--note", "--reason", help="Why (recorded in the audit "
                                                            "trail).")]


@app.command()
def close(entity: EntityRequired, period: Period,
          soft: Annotated[bool, typer.Option(help="Soft-close: approved postings only.")] = False,
          config: ConfigPath = None, as_json: Json = False) -> None:
    """Close (or soft-close) a period; no posting lands in a closed period."""
    with guarded(as_json), _periods(config) as (control, principal):
        changed = control.close(principal, entity, period, soft=soft)
        result = {"entity": entity, "period": changed.name, "status": changed.status.value,
                  "by": principal.id}
        if as_json:
            output.emit_json(result)
        else:
            output.console.print(f"{entity} {changed.name} is now {changed.status.value}")


@app.command()
def reopen(entity: EntityRequired, period: Period,
           reason: Annotated[str, typer.Option(help="Why (recorded in the audit trail).")],
           config: ConfigPath = None, as_json: Json = False) -> None:
    """Ask to reopen a closed period; it opens once another principal approves
    (`ledger reopen-approve ID`)."""
    with guarded(as_json), _periods(config) as (control, principal):
        asked = control.request_reopen(principal, entity, period, reason)
        _print_request(asked, as_json, f"{entity} {period} opens once another principal "
                       f"approves: `finsync ledger reopen-approve {asked.id} --note ...`")


@app.command("reopen-approve")
def reopen_approve(request_id: RowId, note: Note, config: ConfigPath = None,
                   as_json: Json = False) -> None:
    """Approve another principal's request to reopen a period: it opens now."""
    with guarded(as_json), _periods(config) as (control, principal):
        decided = control.decide_reopen(principal, request_id, note, approve=True)
        _print_request(decided, as_json, f"{decided.subject} is open")


@app.command("reopen-reject")
def reopen_reject(request_id: RowId, note: Note, config: ConfigPath = None,
                  as_json: Json = False) -> None:
    """Reject another principal's request to reopen a period: it stays closed."""
    with guarded(as_json), _periods(config) as (control, principal):
        decided = control.decide_reopen(principal, request_id, note, approve=False)
        _print_request(decided, as_json, f"{decided.subject} stays closed")


@app.command("reopen-requests")
def reopen_requests(config: ConfigPath = None, as_json: Json = False) -> None:
    """Requests to reopen a period that wait for a second principal."""
    with guarded(as_json), _periods(config) as (control, _principal):
        waiting = control.pending()
        if as_json:
            output.emit_json({"requests": [r.as_json() for r in waiting]})
            return
        output.table("requests to reopen a period", ["id", "period", "by", "reason",
                                                     "expires"],
                     [[r.id, r.subject, r.requested_by, r.reason, r.expires_at.isoformat()]
                      for r in waiting])


def _print_request(request: Request, as_json: bool, message: str) -> None:
    if as_json:
        output.emit_json(request.as_json())
    else:
        output.console.print(f"request {request.id} ({request.kind} {request.subject}): "
                             f"{request.status.value}; {message}")


@app.command()
def rate(base: Annotated[str, typer.Option()], quote: Annotated[str, typer.Option()],
         on: Annotated[str, typer.Option(help="Effective from (ISO date).")],
         value: Annotated[str, typer.Option("--rate", help="1 base = RATE quote.")],
         config: ConfigPath = None, as_json: Json = False) -> None:
    """Add an exchange rate to the table."""
    with guarded(as_json), _ledger(config, PERIODS_MANAGE) as ledger:
        try:
            amount = Decimal(value)
        except ArithmeticError:
            raise typer.BadParameter(f"not a decimal rate: {value!r}") from None
        ledger.set_rate(Rate(base, quote, day_or_today(on), amount))
        if as_json:
            output.emit_json({"base": base, "quote": quote, "effective": on, "rate": value})
        else:
            output.console.print(f"1 {base} = {value} {quote} from {on}")


@app.command()
def export(file: Path,
           fmt: Annotated[str, typer.Option("--format", help="beancount")] = "beancount",
           config: ConfigPath = None, as_json: Json = False) -> None:
    """Write the books in beancount's format (check them with `bean-check FILE`)."""
    with guarded(as_json), _ledger(config) as ledger:
        if fmt != "beancount":
            output.fail(f"unknown export format {fmt!r}; known: beancount", "unknown_format",
                        as_json=as_json, exit_code=2)
        if not file.parent.is_dir():
            output.fail(f"no such directory: {file.parent} (for {file})",
                        "directory_not_found", as_json=as_json)
        text = ledger.export_beancount(
            can_read_pii=acting(load_config(config)).can(PII_READ))
        file.write_text(text)
        result = {"file": str(file), "format": fmt,
                  "entries": sum(1 for e, _ in ledger.entities() for _ in ledger.entries(e))}
        if as_json:
            output.emit_json(result)
        else:
            output.console.print(f"wrote {result['entries']} entries to {file}")
