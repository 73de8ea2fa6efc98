"""`finsync stripe …`: a Stripe account as a billing source.

`poll` reads Stripe's `/v1/events` from the stored cursor and stores every event it has not
stored yet (fetching partial objects first), for the source's own account and then each of
its Connect accounts; with `--run` the pipeline then maps, sequences
and delivers them. Webhooks arrive by `finsync serve` at `/v1/webhooks/stripe/<source>`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Annotated

import typer

from finsync.auth.principal import ADMIN, events_write
from finsync.bootstrap import approved_config, build_hub, build_stripe_pollers
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
            own, *connected = build_stripe_pollers(loaded, hub.engine, source)

            def send(bodies: Sequence[bytes]) -> object:
                return hub.store(source, bodies, {"x-finsync-poll": source})

            result = own.poll(send)
            accounts = {poller.account: asdict(poller.poll(send)) for poller in connected}
            summary = None
            if run:
                approved_config(loaded, hub.engine, hub.clock)
                summary = asdict(hub.run_until_idle())
        finally:
            hub.engine.dispose()
        data = {"source": source, "poll": asdict(result), "connected_accounts": accounts,
                "run": summary}
        if as_json:
            output.emit_json(data)
            return
        output.counts_table(f"stripe poll of {source}", {
            "events stored": result.events, "objects fetched": result.fetched,
            "pages": result.pages})
        for account, polled in accounts.items():
            output.counts_table(f"stripe poll of {source}, Connect account {account}", {
                "events stored": polled["events"], "objects fetched": polled["fetched"],
                "pages": polled["pages"]})
        if summary:
            output.counts_table("processed", {"raw events": summary["raw_processed"],
                                              **summary["outcomes"]})
