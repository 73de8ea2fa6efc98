"""`finsync demo`: the reference workflow (DESIGN §4) on the embedded defaults, with the
faults of DESIGN §5 injected, in a fresh SQLite database; `--stack stripe-tryton`: the same
workflow on running Stripe (or localstripe), Tryton and PostgreSQL. The years and their
reports are the `finsync.demo` package's; this module runs them and prints what finance
would look at."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import typer

from finsync.cli import output
from finsync.demo.run import run_demo
from finsync.demo.stack import run_stack
from finsync.demo.stack_config import StackSettings
from finsync.hub.milestone import Milestone


def run(directory: Path | None, *, keep: bool, as_json: bool) -> dict[str, Any]:
    report = run_demo(directory, keep=keep)
    if as_json:
        output.emit_json(report)
    else:
        _print(report)
    return report


def run_on_stack(settings: StackSettings, directory: Path | None, *, keep: bool,
                 as_json: bool) -> dict[str, Any]:
    """The stack demo; exits non-zero when the year did not reconcile (`ok` false)."""
    report = run_stack(settings, directory, keep=keep)
    show_stack(report, as_json=as_json)
    if not report["ok"]:
        raise typer.Exit(1)
    return report


def show_stack(report: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        output.emit_json(report)
        return
    console = output.console
    stack = report["stack"]
    console.rule(f"[bold]finsync demo --stack {stack['name']}: the reference workflow on "
                 "real systems")
    console.print(f"Stripe: {stack['stripe']}; ERP: {stack['erp']}; hub store: "
                  f"{stack['hub_store']}")
    for capability, answer in stack["stripe_lacks"].items():
        console.print(f"[yellow]this Stripe has no {capability}[/]: {answer}")
    marks = {"ran": "[green]ran[/]", "skipped": "[yellow]SKIPPED[/]", "failed": "[red]FAILED[/]"}
    output.table("reference steps at Stripe", ["on", "step", "", "what happened / why not"],
                 [[s["on"], s["step"], marks[s["status"]], s["detail"]]
                  for s in report["steps"]])
    skipped = sum(1 for s in report["steps"] if s["status"] == "skipped")
    if skipped:
        console.print(f"[yellow]{skipped} reference steps were skipped: this Stripe cannot do "
                      "them (see above); against a Stripe test account every step runs "
                      "(docs/demo-stack.md)[/]")
    output.table("invoices (Stripe)", ["number", "issued", "total", "credited", "paid", "due",
                                       "status", "correlation"],
                 [[i["number"], i["issue_date"], i["total"], i["credited"], i["paid"], i["due"],
                   i["status"], i["correlation_id"]] for i in report["invoices"]])
    console.print(f"journal entries in the ERP: {len(report['journal_entries'])}")
    output.table(f"milestones of {report['amendment_correlation_id']}",
                 ["milestone", "system", "at"],
                 [[m["milestone"], m["system"], m["at"]] for m in report["amendment_timeline"]])
    _waterfall(report["revenue_recognized"])
    output.table("month-end closes (Tryton)", ["period", "status", "journals"],
                 [[c["period"], c["status"], len(c["journals"])] for c in report["closes"]])
    _recon(report["reconciliation"])
    console.print("faults injected: none (the embedded demo injects them; here the exception "
                  "queue holds what the systems really did)")
    output.table("exceptions", ["class", "status", "at stake", "summary"],
                 [[e["class"], e["status"], e["amount_at_stake"] or "", e["summary"]]
                  for e in report["exceptions"]["items"]])
    console.print(f"correlation chain of {report['amendment_correlation_id']} complete: "
                  f"{report['correlation_chains_complete']}; replaying "
                  f"{report['replay']['events']} events left the books "
                  f"{'unchanged' if report['books_unchanged_by_replay'] else 'CHANGED'}")
    audit = report["audit"]
    console.print(f"audit trail: {audit['records']} records, {audit['checkpoints']} signed "
                  f"checkpoints, {'verified' if audit['ok'] else 'DOES NOT VERIFY'}")
    verdict = "[green]reconciled to zero[/]" if report["ok"] else "[red]NOT reconciled[/]"
    console.print(f"the year on the stack: {verdict}")
    for problem in report["problems"]:
        console.print(f"[red]{problem}[/]")


def _recon(recon: dict[str, Any]) -> None:
    variance = ", ".join(f"{amount} {currency}"
                         for currency, amount in recon["total_variance"].items()) or "none"
    output.table(f"reconciliation as of {recon['as_of']} (total variance {variance})",
                 ["check", "entity", "items", "breaks", "variance"],
                 [[c["name"], c["legal_entity"], c["items"], c["breaks"],
                   f"{c['variance']} {c['currency']}"] for c in recon["checks"]])


def _print(report: dict[str, Any]) -> None:
    console = output.console
    console.rule("[bold]finsync demo: one year of the reference workflow")
    kept = "" if report["workdir_kept"] else " (removed; --keep keeps it)"
    console.print(f"work folder: {report['workdir']}{kept}")
    _cpq(report["cpq"])
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
    _recon(report["reconciliation"])
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
    audit = report["audit"]
    console.print(f"audit trail: {audit['records']} records, {audit['checkpoints']} signed "
                  f"checkpoints, {'verified' if audit['ok'] else 'DOES NOT VERIFY'} "
                  "(`finsync audit verify`)")
    if report.get("console_tokens"):
        config = Path(report["workdir"]) / "finsync.toml"
        console.print(f"explore it in the console: `finsync serve --config {config}`, open "
                      f"http://127.0.0.1:8080/ and log in with a token of "
                      f"{report['console_tokens']} (one per role)")


# The quote-to-cash milestones shown, and their column headings.
QUOTE_TO_CASH = {Milestone.ORDER_ACCEPTED: "ordered", Milestone.CONTRACT_ACCEPTED: "accepted",
                 Milestone.INVOICE_POSTED: "invoiced", Milestone.PAYMENT_APPLIED: "paid",
                 Milestone.REVENUE_SCHEDULE_CREATED: "scheduled"}


def _cpq(cpq: dict[str, Any]) -> None:
    """The CPQ versions the year started from, and the day each reached each milestone."""
    rows = []
    for v in cpq["versions"]:
        days = {m["milestone"]: m["at"][:10] for m in v["milestones"]}
        rows.append([v["version"], v["kind"], v["quote_id"], v["effective_date"], v["order"],
                     v["billing_version"], *(days.get(name, "-") for name in QUOTE_TO_CASH)])
    output.table(f"CPQ versions of {cpq['contract_id']} (catalogue map v"
                 f"{cpq['catalog_version']}) and their quote-to-cash milestones",
                 ["v", "kind", "quote", "effective", "order", "billing v",
                  *QUOTE_TO_CASH.values()], rows)


def _waterfall(revenue: dict[str, str]) -> None:
    """Revenue per month as a bar chart in the terminal."""
    if not revenue:
        return
    top = max(Decimal(v) for v in revenue.values()) or Decimal(1)
    rows = [[period, amount, "█" * int(Decimal(amount) / top * 40)]
            for period, amount in revenue.items()]
    output.table("revenue recognised per month (posted at close)", ["period", "USD", ""], rows)
