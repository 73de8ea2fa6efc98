"""`finsync demo`: the reference workflow (DESIGN §4) on the embedded defaults, with the
faults of DESIGN §5 injected, in a fresh SQLite database. The year and its report are the
`finsync.demo` package's; this module runs it and prints what finance would look at."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from finsync.cli import output
from finsync.demo.run import run_demo


def run(directory: Path | None, *, keep: bool, as_json: bool) -> dict[str, Any]:
    report = run_demo(directory, keep=keep)
    if as_json:
        output.emit_json(report)
    else:
        _print(report)
    return report


def _print(report: dict[str, Any]) -> None:
    console = output.console
    console.rule("[bold]finsync demo: one year of the reference workflow")
    kept = "" if report["workdir_kept"] else " (removed; --keep keeps it)"
    console.print(f"work folder: {report['workdir']}{kept}")
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
    variance = ", ".join(f"{amount} {currency}"
                         for currency, amount in recon["total_variance"].items()) or "none"
    output.table(f"reconciliation as of {recon['as_of']} (total variance "
                 f"{variance})", ["check", "entity", "items", "breaks",
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
    audit = report["audit"]
    console.print(f"audit trail: {audit['records']} records, {audit['checkpoints']} signed "
                  f"checkpoints, {'verified' if audit['ok'] else 'DOES NOT VERIFY'} "
                  "(`finsync audit verify`)")
    if report.get("console_tokens"):
        config = Path(report["workdir"]) / "finsync.toml"
        console.print(f"explore it in the console: `finsync serve --config {config}`, open "
                      f"http://127.0.0.1:8080/ and log in with a token of "
                      f"{report['console_tokens']} (one per role)")


def _waterfall(revenue: dict[str, str]) -> None:
    """Revenue per month as a bar chart in the terminal."""
    if not revenue:
        return
    top = max(Decimal(v) for v in revenue.values()) or Decimal(1)
    rows = [[period, amount, "█" * int(Decimal(amount) / top * 40)]
            for period, amount in revenue.items()]
    output.table("revenue recognised per month (posted at close)", ["period", "USD", ""], rows)
