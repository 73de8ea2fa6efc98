"""`finsync cpq`: the commercial layer from the command line (docs/cpq.md).

Rules:
- `load` stores a CPQ file drop (CSV or JSON lines, one contract version a record) as raw
  events of a CPQ source, durably and in batches, before anything maps them: a record that
  cannot be mapped is kept and opens a `mapping_error` when the pipeline runs. It needs
  `events:write:<source>`.
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

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from finsync.auth.principal import EXCEPTIONS_ACT, Principal
from finsync.bootstrap import approved_config, build_hub
from finsync.cli import output
from finsync.cli.common import ConfigPath, Json, authorised, guarded
from finsync.config import load_config
from finsync.domain.events import EventType
from finsync.hub.replay import ReplayFilter
from finsync.hub.service import Hub

app = typer.Typer(help="The commercial layer: CPQ file drops, replays of CPQ versions, "
                       "quote-to-cash status, the catalogue map.", no_args_is_help=True)

AGGREGATE = "commercial_contract"  # CommercialContractApproved.aggregate_type


@contextmanager
def _hub(config: Path | None, scope: str, *,
         controlled: bool = False) -> Iterator[tuple[Hub, Principal]]:
    """The hub for a principal holding `scope`; `controlled`: the command runs the
    pipeline, so its routes and ownership map must be the approved ones."""
    loaded = load_config(config)
    principal = authorised(loaded, scope)
    hub = build_hub(loaded)
    try:
        if controlled:
            approved_config(loaded, hub.engine, hub.clock)
        yield hub, principal
    finally:
        hub.engine.dispose()


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
                             f"deliveries re-sent, {result.added} new; "
                             f"{summary.deliveries_attempted} delivery attempts")
