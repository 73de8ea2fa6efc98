"""`finsync stripe …`: a Stripe account as a billing source.

`poll` reads Stripe's `/v1/events` from the stored cursor and stores every event it has not
stored yet (fetching partial objects first); with `--run` the pipeline then maps, sequences
and delivers them. Webhooks arrive by `finsync serve` at `/v1/webhooks/stripe/<source>`.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from finsync.auth.principal import ADMIN, events_write
from finsync.bootstrap import approved_config, build_hub, build_stripe_poller
from finsync.cli import output
from finsync.cli.common import ConfigPath, Json, authorised, guarded
from finsync.config import load_config

app = typer.Typer(help="Stripe as a billing source: catch-up polling.", no_args_is_help=True)


@app.command()
def poll(source: Annotated[str, typer.Option(help="Stripe intake source.")] = "stripe",
         run: Annotated[bool, typer.Option("--run", help="Then process and deliver.")] = False,
         config: ConfigPath = None, as_json: Json = False) -> None:
    """Store every Stripe event after the cursor (missed webhooks included)."""
    with guarded(as_json):
        loaded = load_config(config)
        authorised(loaded, events_write(source))
        if run:
            authorised(loaded, ADMIN)
        hub = build_hub(loaded)
        try:
            poller = build_stripe_poller(loaded, hub.engine, source)
            result = poller.poll(lambda bodies: hub.store(source, bodies,
                                                          {"x-finsync-poll": source}))
            summary = None
            if run:
                approved_config(loaded, hub.engine, hub.clock)
                summary = asdict(hub.run_until_idle())
        finally:
            hub.engine.dispose()
        data = {"source": source, "poll": asdict(result), "run": summary}
        if as_json:
            output.emit_json(data)
            return
        output.counts_table(f"stripe poll of {source}", {
            "events stored": result.events, "objects fetched": result.fetched,
            "pages": result.pages})
        if summary:
            output.counts_table("processed", {"raw events": summary["raw_processed"],
                                              **summary["outcomes"]})
