"""`finsync revrec …`: the revenue engine's what-if tool on revenue case files.

`run CASE.json` books the case's contract, applies its events and prints the allocation,
each modification's treatment with its reason and ASC 606 paragraph, revenue per obligation
per period (month, quarter or year) and the contract balances at each period end. Nothing
is stored: the engine is pure, the case file is the whole input (docs/revrec/case-files.md).

`waterfall`, `rpo` and `roll-forward` report the embedded engine's book (the configured
database): revenue per month, remaining performance obligations and the deferred revenue
roll-forward of a legal entity, summed in SQL over the engine's position rows (the figures
the console's Revenue page shows, through the same `finsync.views.revenue` functions).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Annotated, Any

import typer

from finsync.auth.principal import FINANCE_READ
from finsync.bootstrap import build_revenue_service
from finsync.cli import output
from finsync.cli.common import ConfigPath, Json, day_or_today, embedded, guarded
from finsync.systems.revrec import Granularity
from finsync.systems.revrec.casefile import CaseFileError, load_case
from finsync.systems.revrec.report import ReportingPeriod, contract_report
from finsync.systems.revrec.service import RevenueService
from finsync.views.revenue import report_json, roll_forward, rpo, waterfall

app = typer.Typer(help="The revenue engine: run revenue case files (what-if).",
                  no_args_is_help=True)


@app.callback()
def _group() -> None:
    """The revenue engine: run revenue case files (what-if)."""


def _print(data: dict[str, Any]) -> None:
    output.console.print(f"[bold]{data['title'] or data['contract']}[/] — "
                         f"{data['revenue_contract']}, transaction price "
                         f"{data['transaction_price']} {data['currency']}")
    alloc_cols = ["obligation", "product", "pattern", "ssp", "stated_price", "inception_method",
                  "inception_paragraph", "allocated", "schedule"]
    output.table("allocation", alloc_cols, [[r[c] for c in alloc_cols]
                                            for r in data["allocation"]])
    if data["modifications"]:
        output.table("modifications", ["event", "effective", "treatment", "paragraph",
                                       "reason", "catch-up"],
                     [[m["event"], m["effective_date"], m["treatment"], m["paragraph"],
                       m["reason"], ", ".join(f"{k} {v}" for k, v in m["catch_up"].items())]
                      for m in data["modifications"]])
    labels = [p["period"] for p in data["revenue"]["periods"]]
    output.table(f"revenue per {data['period']} ({data['granularity']})",
                 ["obligation", *labels, "total"],
                 [[r["obligation"], *(r["amounts"][k] for k in labels), r["total"]]
                  for r in data["revenue"]["rows"]])
    bal_cols = ["as_of", "billed", "recognised", "deferred_revenue", "contract_asset",
                "unbilled_receivable"]
    output.table("balances at period end", bal_cols,
                 [[r[c] for c in bal_cols] for r in data["balances"]])


CaseArg = Annotated[Path, typer.Argument(help="A revenue case file (JSON).")]
PeriodOpt = Annotated[ReportingPeriod, typer.Option("--period", help="Reporting period.")]
GranularityOpt = Annotated[Granularity | None, typer.Option(
    "--granularity", help="Override the case's granularity (default: the case's, else day).")]


@app.command("run")
def run(case: CaseArg, period: PeriodOpt = ReportingPeriod.MONTH,
        granularity: GranularityOpt = None, as_json: Json = False) -> None:
    """Allocation, modification treatments, revenue per obligation per period, balances."""
    with guarded(as_json):
        try:
            text = case.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CaseFileError("", f"cannot read {case}: {exc}") from exc
        loaded = load_case(text)
        if granularity is not None:
            loaded = loaded.with_granularity(granularity)
        data = report_json(contract_report(loaded.state(), period), loaded.title)
        if as_json:
            output.emit_json(data)
        else:
            _print(data)


EntityOpt = Annotated[str, typer.Option("--entity", "-e", help="Legal entity id.")]
NOT_FOOTING_EXIT = 3  # a month of the roll-forward does not foot (its row shows by how much)


def _adjusted(adjustments: list[dict[str, str]]) -> str:
    """The catch-ups booked in the month for closed periods: `YYYY-MM revenue ...`."""
    return "; ".join(f"{a['period']} revenue {a['revenue']}, contra {a['contra_revenue']}"
                     for a in adjustments)


def _service(config: Path | None) -> AbstractContextManager[RevenueService]:
    return embedded(config, "revenue", "revenue engine", build_revenue_service, FINANCE_READ)


@app.command("waterfall")
def waterfall_report(
        entity: EntityOpt,
        first: Annotated[str, typer.Option("--from", help="First month, YYYY-MM.")],
        last: Annotated[str, typer.Option("--to", help="Last month, YYYY-MM.")],
        config: ConfigPath = None, as_json: Json = False) -> None:
    """Revenue recognised per month and currency over the entity's revenue contracts."""
    with guarded(as_json), _service(config) as service:
        data = waterfall(service, entity, first, last).as_json()
        if as_json:
            output.emit_json({k: data[k] for k in ("legal_entity", "months", "revenue",
                                                   "gross", "contra")})
            return
        labels = data["months"]
        output.table(f"revenue per month, {entity}", ["currency", "", *labels],
                     [[cur, part, *(data[key][cur][k] for k in labels)]
                      for cur in data["revenue"]
                      for part, key in (("gross", "gross"), ("contra", "contra"),
                                        ("net", "revenue"))])


@app.command("rpo")
def rpo_report(entity: EntityOpt,
               as_of: Annotated[str | None, typer.Option(
                   "--as-of", help="ISO date (default: today).")] = None,
               config: ConfigPath = None, as_json: Json = False) -> None:
    """Remaining performance obligations of the entity: within 12 months and after."""
    with guarded(as_json), _service(config) as service:
        data = rpo(service, entity, day_or_today(as_of)).as_json()
        if as_json:
            output.emit_json(data)
            return
        cols = ["currency", "current", "non_current", "total"]
        output.table(f"remaining performance obligations, {entity}, {data['as_of']}", cols,
                     [[r[c] for c in cols] for r in data["rpo"]])


@app.command("roll-forward")
def roll_forward_report(
        entity: EntityOpt,
        first: Annotated[str, typer.Option("--from", help="First month, YYYY-MM.")],
        last: Annotated[str, typer.Option("--to", help="Last month, YYYY-MM.")],
        config: ConfigPath = None, as_json: Json = False) -> None:
    """Deferred revenue per month and currency: opening + billed - recognised = closing,
    checked (exit 3 when a month does not foot). Opening and closing are the net contract
    position (deferred revenue less contract assets and unbilled receivables, which may be
    below zero); the closing's two sides are shown beside it."""
    with guarded(as_json), _service(config) as service:
        data = roll_forward(service, entity, first, last).as_json()
        if as_json:
            output.emit_json(data)
        else:
            cols = ["month", "currency", "opening", "invoiced", "credited", "recognised",
                    "closing", "closing_deferred_revenue", "closing_contract_asset",
                    "difference"]
            headers = [*cols[:6], "closing (net)", "deferred revenue", "contract asset",
                       "difference", "adjustments"]
            output.table(f"deferred revenue roll-forward, {entity}", headers,
                         [[*(r[c] for c in cols), _adjusted(r["adjustments"])]
                          for r in data["rows"]])
        if not data["foots"]:
            raise typer.Exit(NOT_FOOTING_EXIT)
