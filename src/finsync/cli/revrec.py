"""`finsync revrec …`: the revenue engine's what-if tool on revenue case files.

`run CASE.json` books the case's contract, applies its events and prints the allocation,
each modification's treatment with its reason and ASC 606 paragraph, revenue per obligation
per period (month, quarter or year) and the contract balances at each period end. Nothing
is stored: the engine is pure, the case file is the whole input (docs/revrec/case-files.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from finsync.cli import output
from finsync.cli.common import Json, guarded
from finsync.domain.clock import Period
from finsync.systems.revrec import (
    Granularity,
    RevenueContractState,
    balances,
    schedules,
    waterfall,
)
from finsync.systems.revrec.casefile import CaseFileError, load_case

app = typer.Typer(help="The revenue engine: run revenue case files (what-if).",
                  no_args_is_help=True)


class PeriodSize(StrEnum):
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


@app.callback()
def _group() -> None:
    """The revenue engine: run revenue case files (what-if)."""


def _label(month: Period, size: PeriodSize) -> str:
    start = month.start
    if size is PeriodSize.MONTH:
        return f"{start:%Y-%m}"
    if size is PeriodSize.QUARTER:
        return f"{start.year}-Q{(start.month - 1) // 3 + 1}"
    return str(start.year)


def _span(state: RevenueContractState) -> tuple[date, date]:
    lines = [li.period for s in schedules(state) for li in s.lines]
    if not lines:
        return state.contract.start_date, state.contract.end_date
    return min(p.start for p in lines), max(p.end for p in lines)


def _revenue(state: RevenueContractState, size: PeriodSize) -> dict[str, Any]:
    start, end = _span(state)
    fall = waterfall(state, start, end)
    labels: list[str] = []
    ends: dict[str, date] = {}
    for month in fall.months:
        label = _label(month, size)
        if label not in ends:
            labels.append(label)
        ends[label] = month.end
    rows = []
    for row in fall.rows:
        sums = dict.fromkeys(labels, Decimal(0))
        for month, amount in zip(fall.months, row.amounts, strict=True):
            sums[_label(month, size)] += amount.amount
        rows.append({"obligation": row.obligation_id,
                     "amounts": {k: str(v) for k, v in sums.items()},
                     "total": str(sum(sums.values(), Decimal(0)))})
    return {"periods": [{"period": k, "end": ends[k].isoformat()} for k in labels],
            "rows": rows}


def _allocation(state: RevenueContractState) -> list[dict[str, str]]:
    inception = {s.obligation_id: s for s in state.inception_allocation}
    refs = {s.obligation_id: s.reference for s in schedules(state)}
    rows = []
    for ob in state.obligations:
        share = inception.get(ob.obligation_id)
        rows.append({
            "obligation": ob.obligation_id, "product": ob.product_id,
            "pattern": ob.pattern.value, "ssp": str(ob.standalone_selling_price.amount),
            "stated_price": str(ob.stated_price.amount),
            "inception_method": share.method.value if share else ob.revisions[0].detail,
            "inception_paragraph": share.paragraph if share else ob.revisions[0].cause,
            "allocated": str(ob.allocated_price.amount),
            "schedule": refs[ob.obligation_id]})
    return rows


def _modifications(state: RevenueContractState) -> list[dict[str, Any]]:
    return [{"event": d.event_id, "amendment": d.amendment_id,
             "contract_version": d.contract_version,
             "effective_date": d.effective_date.isoformat(), "treatment": d.treatment.value,
             "paragraph": d.paragraph, "reason": d.reason,
             "catch_up": {ob: str(m.amount) for ob, m in d.catch_up}}
            for d in state.decisions]


def _balances(state: RevenueContractState, period_ends: Sequence[date]) -> list[dict[str, str]]:
    rows = []
    for day in period_ends:
        b = balances(state, day)
        rows.append({"as_of": day.isoformat(), "billed": str(b.billed.amount),
                     "recognised": str(b.recognised.amount),
                     "deferred_revenue": str(b.deferred_revenue.amount),
                     "contract_asset": str(b.contract_asset.amount),
                     "unbilled_receivable": str(b.unbilled_receivable.amount)})
    return rows


def report(state: RevenueContractState, title: str, size: PeriodSize) -> dict[str, Any]:
    revenue = _revenue(state, size)
    ends = [date.fromisoformat(p["end"]) for p in revenue["periods"]]
    return {"title": title, "contract": state.contract.id,
            "revenue_contract": state.revenue_contract_id, "currency": state.currency,
            "legal_entity": state.legal_entity, "granularity": state.granularity.value,
            "period": size.value, "transaction_price": str(state.transaction_price.amount),
            "allocation": _allocation(state), "modifications": _modifications(state),
            "revenue": revenue, "balances": _balances(state, ends)}


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
PeriodOpt = Annotated[PeriodSize, typer.Option("--period", help="Reporting period.")]
GranularityOpt = Annotated[Granularity | None, typer.Option(
    "--granularity", help="Override the case's granularity (default: the case's, else day).")]


@app.command("run")
def run(case: CaseArg, period: PeriodOpt = PeriodSize.MONTH,
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
        data = report(loaded.state(), loaded.title, period)
        if as_json:
            output.emit_json(data)
        else:
            _print(data)
