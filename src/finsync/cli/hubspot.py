"""`finsync hubspot …`: a HubSpot account as the CRM/CPQ source.

`fetch` reads what HubSpot's webhooks named (deals with their line items, quotes and
companies; companies) from HubSpot's CRM API and stores the snapshots as raw events of the
source, as the pipeline's pump does before each run, but a failure to reach HubSpot is
raised instead of logged; with `--run` the pipeline then maps, sequences and delivers them.
Webhooks arrive by `finsync serve` at `/v1/webhooks/hubspot/<source>` (docs/cpq/hubspot.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Annotated

import typer

from finsync.auth.principal import ADMIN, events_write
from finsync.bootstrap import approved_config, build_hub, build_hubspot_fetcher
from finsync.cli import output
from finsync.cli.common import ConfigPath, Json, authorised, guarded
from finsync.config import load_config

app = typer.Typer(help="HubSpot as the CRM/CPQ source (webhooks' objects fetched).",
                  no_args_is_help=True)


@app.command()
def fetch(source: Annotated[str, typer.Option(help="HubSpot intake source.")] = "crm",
          run: Annotated[bool, typer.Option("--run", help="Then process and deliver.")] = False,
          config: ConfigPath = None, as_json: Json = False) -> None:
    """Read the objects HubSpot's webhooks named and store their snapshots."""
    with guarded(as_json):
        loaded = load_config(config)
        authorised(loaded, events_write(source))
        if run:
            authorised(loaded, ADMIN)
        hub = build_hub(loaded)
        try:
            fetcher = build_hubspot_fetcher(loaded, hub.engine, source, hub.clock)

            def send(bodies: Sequence[bytes]) -> object:
                return hub.store(source, bodies, {"x-finsync-fetch": source})

            result = fetcher.fetch(send)
            waiting = fetcher.waiting()
            summary = None
            if run:
                approved_config(loaded, hub.engine, hub.clock)
                summary = asdict(hub.run_until_idle())
        finally:
            hub.engine.dispose()
        data = {"source": source, "fetch": asdict(result), "waiting": waiting, "run": summary}
        if as_json:
            output.emit_json(data)
            return
        output.counts_table(f"hubspot fetch of {source}", {
            "objects read": result.read, "snapshots stored": result.sent,
            "skipped": result.skipped, "still waiting": waiting})
        if summary:
            output.counts_table("processed", {"raw events": summary["raw_processed"],
                                              **summary["outcomes"]})
