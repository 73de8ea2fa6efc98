"""`finsync demo`: the reference workflow (DESIGN §4) on the embedded defaults, with the
faults of DESIGN §5 injected, in a fresh SQLite database. The year itself is scripted in
`demo_workflow.py`; this module runs it and reports what finance would look at."""

from __future__ import annotations

import shutil
import tempfile
import tomllib
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from finsync.bootstrap import Finance, build_billing_service, build_finance, build_ledger_service
from finsync.cli import output
from finsync.cli.demo_workflow import (
    DUPLICATE,
    ENTITY,
    LATE_PAYMENT,
    NOT_JSON,
    OUT_OF_ORDER,
    UPGRADE,
    YEAR,
    SimClock,
    Workflow,
    revenue_by_period,
)
from finsync.config import DEFAULT_CONFIG, FinsyncConfig, parse_config
from finsync.hub.replay import ReplayFilter
from finsync.storage import jsonutil, outbox
from finsync.storage.db import reading
from finsync.systems.ledger.service import LedgerService

AS_OF = date(YEAR, 12, 31)
CHAIN = ("contract_accepted", "invoice_posted", "payment_applied", "revenue_schedule_created")


def run_demo(directory: Path | None, *, as_json: bool) -> dict[str, Any]:
    workdir = directory or Path(tempfile.mkdtemp(prefix="finsync-demo-"))
    shutil.rmtree(workdir / "var", ignore_errors=True)
    config = parse_config(tomllib.loads(DEFAULT_CONFIG.read_text()), workdir.resolve())
    # The demo plays billing's webhooks itself (to inject faults), so nothing is pumped.
    config = config.model_copy(update={"pumps": {}})
    clock = SimClock(datetime(YEAR, 1, 1, tzinfo=UTC))
    finance = build_finance(config, clock=clock)
    try:
        report = _drive(finance, config, clock, workdir)
    finally:
        finance.hub.engine.dispose()
    if as_json:
        output.emit_json(report)
    else:
        _print(report)
    return report


def _drive(finance: Finance, config: FinsyncConfig, clock: SimClock,
           workdir: Path) -> dict[str, Any]:
    billing = build_billing_service(config, finance.hub.engine, clock)
    ledger = build_ledger_service(config, finance.hub.engine, clock=clock)
    log = Workflow(finance, billing, clock).run()
    recon = finance.recon.run(AS_OF)
    books = _books(ledger)
    replayed = finance.hub.replay(ReplayFilter(everything=True))
    finance.hub.run_until_idle()
    exceptions = finance.triage.listing(status=None)
    status = finance.hub.status()
    timeline = finance.hub.timeline(UPGRADE)
    report: dict[str, Any] = {
        "workdir": str(workdir),
        "invoices": [_invoice(s) for s in billing.invoices()],
        "journal_entries": books["entries"],
        "revenue_recognized": {k: str(v) for k, v in sorted(revenue_by_period(
            [e for e in ledger.entries(ENTITY) if (e.correlation_id or "").startswith(
                "close:")], finance.ports.revenue().account_map()["revenue"]).items())},
        "reconciliation": _recon(recon),
        "exceptions": {
            "open": sum(1 for e in exceptions if e["status"] not in ("resolved", "ignored")),
            "resolved": sum(1 for e in exceptions if e["status"] == "resolved"),
            "ignored": sum(1 for e in exceptions if e["status"] == "ignored"),
            "by_class": _count(e["class"] for e in exceptions),
            "items": [{k: _plain(e[k]) for k in ("id", "class", "status", "amount_at_stake",
                                                  "correlation_id", "summary",
                                                  "resolution_note")} for e in exceptions]},
        "duplicates_ignored": status["duplicates_ignored"],
        "parked_out_of_order": log.parked,
        "correlation_chains_complete": _chains_complete(finance, ledger, timeline),
        "amendment_correlation_id": UPGRADE,
        "amendment_timeline": [{"milestone": m["name"], "system": m["target"],
                                "at": m["recorded_at"].isoformat()} for m in timeline],
        "amendment_status": finance.hub.transaction_status(UPGRADE),
        "closes": log.closes,
        "triage_actions": log.actions,
        "books_unchanged_by_replay": books == _books(ledger),
        "replay": {"events": replayed.events, "deliveries_resent": replayed.requeued},
        "trial_balance": books["trial_balance"],
        "status": status,
    }
    report["faults"] = _faults(report, log.faults)
    return report


def _invoice(s: Any) -> dict[str, Any]:
    return {"number": s.number, "issue_date": s.issue_date.isoformat(),
            "contract_version": s.contract_version, "total": str(s.total.amount),
            "credited": str(s.credited.amount), "paid": str(s.paid.amount),
            "due": str(s.amount_due.amount), "currency": s.total.currency,
            "correlation_id": s.correlation_id}


def _recon(report: Any) -> dict[str, Any]:
    checks = [{"name": c.name, "legal_entity": c.legal_entity,
               "variance": str(c.variance.amount), "currency": c.currency,
               "items": len(c.items), "breaks": len(c.breaks), "notes": list(c.notes)}
              for c in report.checks]
    total = sum((abs(c.variance.amount) for c in report.checks), Decimal("0.00"))
    return {"as_of": report.as_of.isoformat(), "checks": checks,
            "total_variance": str(total.quantize(Decimal("0.01")))}


def _books(ledger: LedgerService) -> dict[str, Any]:
    entities = [e for e, _ in ledger.entities()]
    return {
        "entries": [{"id": e.id, "entity": e.legal_entity, "date": e.posting_date.isoformat(),
                     "memo": e.memo, "correlation_id": e.correlation_id,
                     "lines": [[ln.account, ln.side.value, str(ln.amount)] for ln in e.lines]}
                    for e in ledger.entries()],
        "trial_balance": {e: {r.account: str(r.balance) for r in ledger.trial_balance(e, AS_OF)}
                          for e in entities},
    }


def _chains_complete(finance: Finance, ledger: LedgerService,
                     timeline: list[dict[str, Any]]) -> bool:
    """Every posting names the correlation id of the event that caused it, every entry's
    correlation id leads back to events in the hub, and the amendment's chain is whole."""
    with reading(finance.hub.engine) as conn:
        done = [r for r in outbox.all_rows(conn)
                if r["status"] == "done" and r["target"] in finance.ports.ledgers]
    by_id = {e.id: e for e in ledger.entries()}
    forward = all(by_id[jsonutil.loads(r["result"])["external_id"]].correlation_id
                  == r["correlation_id"] for r in done)
    backward = {e.correlation_id for e in by_id.values()} <= {r["correlation_id"] for r in done}
    whole = set(CHAIN) <= {m["name"] for m in timeline}
    return forward and backward and whole


def _faults(report: dict[str, Any], injected: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_class = report["exceptions"]["by_class"]
    items = report["exceptions"]["items"]

    def settled(klass: str) -> bool:
        return by_class.get(klass, 0) > 0 and all(
            e["status"] in ("resolved", "ignored") for e in items if e["class"] == klass)

    caught = {
        DUPLICATE: report["duplicates_ignored"] >= 1,
        OUT_OF_ORDER: report["parked_out_of_order"] >= 1
        and settled("missing_revrec_reference"),
        LATE_PAYMENT: settled("closed_period"),
        NOT_JSON: settled("mapping_error"),
    }
    return [{**f, "caught": caught.get(f["fault"], False)} for f in injected]


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _print(report: dict[str, Any]) -> None:
    console = output.console
    console.rule("[bold]finsync demo: one year of the reference workflow")
    console.print(f"work folder: {report['workdir']}")
    output.table(f"milestones of amendment {report['amendment_correlation_id']}",
                 ["milestone", "system", "at"],
                 [[m["milestone"], m["system"], m["at"]] for m in report["amendment_timeline"]])
    console.print(f"technical status: {report['amendment_status']['technical']}, financial "
                  f"status: {report['amendment_status']['financial']}")
    output.table("invoices (billing)", ["number", "issued", "v", "total", "credited", "paid",
                                        "due", "correlation"],
                 [[i["number"], i["issue_date"], i["contract_version"], i["total"],
                   i["credited"], i["paid"], i["due"], i["correlation_id"]]
                  for i in report["invoices"]])
    console.print(f"journal entries in the ERP: {len(report['journal_entries'])}")
    _waterfall(report["revenue_recognized"])
    recon = report["reconciliation"]
    output.table(f"reconciliation as of {recon['as_of']} (total variance "
                 f"{recon['total_variance']})", ["check", "entity", "items", "breaks",
                                                 "variance"],
                 [[c["name"], c["legal_entity"], c["items"], c["breaks"],
                   f"{c['variance']} {c['currency']}"] for c in recon["checks"]])
    output.table("injected faults", ["fault", "control", "caught"],
                 [[f["fault"], f["control"], "[green]yes[/]" if f["caught"] else "[red]NO[/]"]
                  for f in report["faults"]])
    output.table("triage actions", ["action", "by", "status", "detail"],
                 [[a["action"], a["by"], a["status"], a["detail"]]
                  for a in report["triage_actions"]])
    output.table("exceptions", ["class", "status", "at stake", "note"],
                 [[e["class"], e["status"], e["amount_at_stake"] or "",
                   e["resolution_note"] or ""] for e in report["exceptions"]["items"]])
    console.print(f"duplicates ignored: {report['duplicates_ignored']}; correlation chains "
                  f"complete: {report['correlation_chains_complete']}; replaying "
                  f"{report['replay']['events']} events left the books "
                  f"{'unchanged' if report['books_unchanged_by_replay'] else 'CHANGED'}")


def _waterfall(revenue: dict[str, str]) -> None:
    """Revenue per month as a bar chart in the terminal."""
    if not revenue:
        return
    top = max(Decimal(v) for v in revenue.values()) or Decimal(1)
    rows = [[period, amount, "█" * int(Decimal(amount) / top * 40)]
            for period, amount in revenue.items()]
    output.table("revenue recognised per month (posted at close)", ["period", "USD", ""], rows)
