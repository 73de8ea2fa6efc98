"""`finsync cpq`: the commercial layer from the command line (docs/cpq.md).

Rules:
- `load` stores a CPQ file drop (CSV or JSON lines, one contract version a record) as raw
  events of a CPQ source, durably and in batches. The file is judged whole first: one
  problem anywhere refuses all of it, every problem listed with its row, nothing stored.
  It needs `events:write:<source>`.
- `replay` re-drives the stored CPQ versions (`commercial_contract.approved`) to their
  targets under their original keys: billing answers a quote it applied with its first
  receipt, so a version lands once however often it is replayed (`exceptions:act`; the
  reason goes to the audit trail).
- `status` and `catalog` read what the hub keeps (`finance:read`); `catalog check` exits
  non-zero when the map names a product or price billing does not sell.
- Parse -> call -> render: the services come from `bootstrap`; nothing here reads a table
  or computes a figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer

from finsync.auth.principal import EXCEPTIONS_ACT, FINANCE_READ, events_write
from finsync.bootstrap import (
    build_engine,
    catalog_map_in_force,
    check_catalog_map,
    load_cpq_file,
)
from finsync.cli import output
from finsync.cli.common import ConfigPath, Json, authorised, guarded
from finsync.cli.common import hub_for as _hub
from finsync.config import load_config
from finsync.domain.catalog_map import CatalogMap, digest
from finsync.domain.events import CommercialContractApproved, EventType
from finsync.domain.status import UNRESOLVED
from finsync.hub import cpq_listing, cpq_status
from finsync.hub.cpq_status import ContractStatus, VersionStatus, contract_status
from finsync.hub.milestone import Milestone
from finsync.hub.replay import ReplayFilter
from finsync.hub.service import Hub

app = typer.Typer(help="The commercial layer: CPQ file drops, replays of CPQ versions, "
                       "quote-to-cash status, the catalogue map.", no_args_is_help=True)
catalog_app = typer.Typer(help="The catalogue map: CPQ product -> billing price, SSP entry, "
                               "ERP revenue account.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")

AGGREGATE = CommercialContractApproved.aggregate_type
ID_MAX_CHARS = 255  # a contract's, a quote's id: the hub's id columns
FILE_KINDS = ("cpq",)  # the source kinds whose documents a file drop holds
PROBLEMS_SHOWN = 20
# The quote-to-cash milestones `status` shows per version, and their column headings.
QUOTE_TO_CASH = {Milestone.ORDER_ACCEPTED: "ordered", Milestone.CONTRACT_ACCEPTED: "accepted",
                 Milestone.INVOICE_POSTED: "invoiced", Milestone.PAYMENT_APPLIED: "paid",
                 Milestone.REVENUE_SCHEDULE_CREATED: "scheduled"}


def _check_ids(**given: str | None) -> None:
    """Ids typed on the command line are at most `ID_MAX_CHARS` characters, as the hub's
    id columns hold them (`invalid_argument` otherwise, naming the option)."""
    for name, value in given.items():
        if value is not None and not 0 < len(value) <= ID_MAX_CHARS:
            raise typer.BadParameter(f"{name} must be 1 to {ID_MAX_CHARS} characters "
                                     f"(ID_MAX_CHARS), not {len(value):,}")


@app.command()
def replay(contract: Annotated[str | None, typer.Argument(
               help="The commercial contract (default: every one).")] = None,
           quote: Annotated[str | None, typer.Option(
               help="Only the version of this quote (its correlation id).")] = None,
           reason: Annotated[str, typer.Option(help="Why (recorded in the audit trail).")]
           = "",
           config: ConfigPath = None, as_json: Json = False) -> None:
    """Re-drive the stored CPQ versions (of CONTRACT) to billing and the other targets;
    what billing already applied is not applied again."""
    with guarded(as_json):
        _check_ids(contract=contract, quote=quote)
        if not reason.strip():
            output.fail("say why (--reason): a replay is recorded in the audit trail",
                        "reason_required", as_json=as_json, exit_code=2)
        selection = ReplayFilter(correlation_id=quote,
                                 aggregate=(AGGREGATE, contract) if contract else None,
                                 event_type=EventType.COMMERCIAL_CONTRACT_APPROVED)
        with _hub(config, EXCEPTIONS_ACT, controlled=True) as (hub, who), \
                output.progress_bar(not as_json) as progress:
            result = hub.replay(selection, progress, actor=who.id, reason=reason)
            summary = hub.run_until_idle(progress)
        if as_json:
            output.emit_json({"replay": asdict(result), "run": asdict(summary)})
            return
        if not result.events:
            output.console.print("no stored CPQ version matches")
            return
        output.console.print(f"replayed {result.events} CPQ versions: {result.requeued} "
                             f"deliveries re-sent, {result.added} new; then the pipeline ran "
                             f"until idle ({summary.raw_processed} raw events, "
                             f"{summary.deliveries_attempted} delivery attempts in all)")


@app.command()
def load(file: Annotated[Path, typer.Argument(help="A CPQ file drop: .csv, .jsonl or "
                                              ".ndjson (docs/cpq/sources.md).")],
         source: Annotated[str, typer.Option(help="The CPQ source it comes from "
                                             "([sources], kind \"cpq\").")] = "cpq",
         config: ConfigPath = None, as_json: Json = False) -> None:
    """Store each contract version (or customer) of FILE as a raw event of SOURCE, durably
    and in batches; a file with any problem is refused whole, every problem listed with its
    row, and nothing is stored. `finsync run` then orders the versions from billing."""
    with guarded(as_json):
        loaded = load_config(config)
        authorised(loaded, events_write(source))
        kind = loaded.sources.get(source)
        if kind not in FILE_KINDS:
            output.fail(f"{source!r} is not a CPQ source of kind \"cpq\" in [sources] "
                        f"(it is {kind or 'not configured'})", "unknown_source",
                        as_json=as_json)
        if not file.is_file():
            output.fail(f"no such file: {file}", "file_not_found", as_json=as_json)
        dropped = load_cpq_file(loaded, source, file, datetime.now(UTC).date())
        if not dropped.ok:
            _refuse(file, dropped.problems, as_json)
        bodies = [version.body for version in dropped.versions]
        with _hub(config, events_write(source)) as (hub, _who), \
                output.progress_bar(not as_json) as progress:
            stored = _store(hub, source, file.name, bodies, progress)
        result = {"source": source, "file": str(file), "versions": len(bodies),
                  "stored": stored}
        if as_json:
            output.emit_json(result)
            return
        output.console.print(f"stored {stored} CPQ documents from {file} as {source}; "
                             "`finsync run` orders them from billing")


def _store(hub: Hub, source: str, name: str, bodies: Sequence[bytes],
           progress: Any) -> int:
    batch = hub.settings.intake_batch_size
    stored = 0
    for start in range(0, len(bodies), batch):
        stored += hub.store(source, bodies[start:start + batch], {"x-finsync-file": name})
        progress("stored", stored, len(bodies))
    return stored


def _refuse(file: Path, problems: Sequence[Any], as_json: bool) -> None:
    rows = [{"row": p.row, "code": p.code, "message": p.message} for p in problems]
    if as_json:
        output.emit_json({"error": {"code": "file_invalid", "message": f"{file}: "
                                    f"{len(rows)} problem(s), nothing stored"},
                          "problems": rows})
        raise typer.Exit(1)
    output.table(f"problems in {file} (nothing stored)", ["row", "code", "problem"],
                 [[r["row"], r["code"], r["message"]] for r in rows[:PROBLEMS_SHOWN]])
    shown = "" if len(rows) <= PROBLEMS_SHOWN else f" (the first {PROBLEMS_SHOWN} shown)"
    output.fail(f"{file}: {len(rows)} problem(s){shown}; nothing stored", "file_invalid",
                as_json=False)


@app.command()
def status(contract: Annotated[str | None, typer.Argument(
               help="A CPQ contract (default: every one, a page at a time).")] = None,
           after: Annotated[str | None, typer.Option(
               help="Without CONTRACT: list the contracts after this id.")] = None,
           limit: Annotated[int, typer.Option(min=1, max=cpq_listing.PAGE_MAX,
                                              help="Without CONTRACT: contracts a page.")]
           = 50,
           config: ConfigPath = None, as_json: Json = False) -> None:
    """Quote to cash: each CPQ version of CONTRACT, its order to billing (held, sent,
    applied, mismatch), deliveries, milestones and exceptions, and the renewal baseline;
    without CONTRACT, one line a version of every contract."""
    with guarded(as_json):
        _check_ids(contract=contract, after=after)
        with _hub(config, FINANCE_READ) as (hub, _who):
            if contract is None:
                found = cpq_listing.contract_statuses(hub.engine, after=after, limit=limit)
            else:
                one = contract_status(hub.engine, contract)
                if one is None:
                    output.fail(f"the hub holds no CPQ version of contract {contract!r}",
                                "not_found", as_json=as_json)
                found = [one]
        if as_json:
            if contract is None:
                output.emit_json({"contracts": [cpq_status.as_json(s) for s in found]})
            else:
                output.emit_json(cpq_status.as_json(found[0]))
            return
        _show_statuses(found, contract is None)


def _show_statuses(found: Sequence[ContractStatus], listing: bool) -> None:
    if not found:
        output.console.print("the hub holds no CPQ contract" + (" after that id" if listing
                                                                 else ""))
        return
    output.table("quote to cash", ["contract", "v", "quote", "event", "order", "map v",
                                   *QUOTE_TO_CASH.values(), "exceptions"],
                 [[s.contract_id, v.cpq_version, v.quote_id, v.event_status,
                   v.order_state.value if v.order_state else "-", v.catalog_version or "-",
                   *_milestone_days(v), _exceptions(v)]
                  for s in found for v in s.versions])
    for s in found:
        for v in s.versions:
            if v.detail:
                output.console.print(f"{s.contract_id} v{v.cpq_version} ({v.quote_id}): "
                                     f"{v.detail}")
    if not listing:
        _show_baseline(found[0])


def _milestone_days(version: VersionStatus) -> list[str]:
    first: dict[str, str] = {}
    for milestone in version.milestones:
        first.setdefault(milestone.name, milestone.recorded_at.date().isoformat())
    return [first.get(name, "-") for name in QUOTE_TO_CASH]


def _exceptions(version: VersionStatus) -> str:
    unresolved = [e for e in version.exceptions if e.status in UNRESOLVED]
    if not unresolved:
        return f"{len(version.exceptions)} settled" if version.exceptions else "-"
    return ", ".join(f"#{e.id} {e.exception_class} ({e.status}{_at_stake(e.at_stake)})"
                     for e in unresolved)


def _at_stake(at_stake: dict[str, str] | None) -> str:
    """The money an exception puts at stake, as a person reads it (none: nothing)."""
    if at_stake is None:
        return ""
    return f", {Decimal(at_stake['amount']):,} {at_stake['currency']} at stake"


def _show_baseline(status: ContractStatus) -> None:
    baseline = status.baseline
    if baseline is None:
        output.console.print("renewal baseline: none yet (no version applied)")
        return
    output.table(f"renewal baseline after v{baseline.cpq_version} ({baseline.quote_id}): "
                 f"renews on {baseline.renews_on}, uplift {baseline.uplift_percent}%",
                 ["line", "product", "quantity", "unit price"],
                 [[line.line_id, line.product_code, line.quantity,
                   f"{line.net_unit_price.amount} {line.net_unit_price.currency}"]
                  for line in baseline.lines])


@catalog_app.command("show")
def catalog_show(config: ConfigPath = None, as_json: Json = False) -> None:
    """The catalogue map in force (loaded from `[cpq] catalog` when the hub starts) and
    its version."""
    with guarded(as_json):
        with _hub(config, FINANCE_READ) as (hub, _who):
            in_force = catalog_map_in_force(hub.engine)
        if in_force is None:  # the hub loads one at start when billing takes orders
            output.fail("no catalogue map is loaded: no billing system takes orders "
                        "([systems], docs/cpq.md)", "not_found", as_json=as_json)
        version, current = in_force
        if as_json:
            output.emit_json({"version": version, "products": _entries(current)})
            return
        _show_entries(f"catalogue map v{version}", current)


@catalog_app.command("check")
def catalog_check(file: Annotated[Path | None, typer.Argument(
                      help="A catalogue map TOML (default: the configured one).")] = None,
                  config: ConfigPath = None, as_json: Json = False) -> None:
    """Check a catalogue map against what billing, the revenue engine and the ERP know,
    without loading it (exit 1 naming every problem), and say whether loading it would make
    a new version."""
    with guarded(as_json):
        loaded = load_config(config)
        authorised(loaded, FINANCE_READ)
        if file is not None:
            if not file.is_file():
                output.fail(f"no such file: {file}", "file_not_found", as_json=as_json)
            named = loaded.cpq.model_copy(update={"catalog": str(file.resolve())})
            loaded = loaded.model_copy(update={"cpq": named})
        path, checked = check_catalog_map(loaded)
        engine = build_engine(loaded)
        try:
            in_force = catalog_map_in_force(engine)
        finally:
            engine.dispose()
        new = in_force is None or digest(in_force[1]) != digest(checked)
        if as_json:
            output.emit_json({"file": str(path), "products": len(checked.entries),
                              "in_force_version": None if in_force is None else in_force[0],
                              "new_version": new})
            return
        _show_entries(f"{path}: agrees with the systems", checked)
        version = "none is loaded yet" if in_force is None else f"v{in_force[0]} is in force"
        change = "a new version" if new else "no new version (same content)"
        output.console.print(f"{version}; loading this file makes {change}")


def _entries(current: CatalogMap) -> list[dict[str, Any]]:
    return [{"code": e.code, "name": e.name, "billing_product": e.billing_product,
             "prices": dict(e.prices), "ssp_product": e.ssp_product,
             "revenue_account": e.revenue_account} for e in current.entries]


def _show_entries(title: str, current: CatalogMap) -> None:
    output.table(title, ["CPQ product", "name", "billing product", "prices", "SSP entry",
                         "revenue account"],
                 [[e.code, e.name, e.billing_product,
                   ", ".join(f"{c} {p}" for c, p in e.prices), e.ssp_product,
                   e.revenue_account] for e in current.entries])
