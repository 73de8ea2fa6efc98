"""`finsync stripe …`: a Stripe account as a billing source and as billing's books.

`poll` reads Stripe's `/v1/events` from the stored cursor and stores every event it has not
stored yet (fetching partial objects first), for the source's own account and then each of
its Connect accounts; with `--run` the pipeline then maps, sequences
and delivers them. Webhooks arrive by `finsync serve` at `/v1/webhooks/stripe/<source>`.
Both keep the local mirror of the account's objects that reconciliation reads; `verify`
checks that mirror against Stripe's API (exit 5 when anything differs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Annotated

import typer

from finsync.auth.principal import ADMIN, FINANCE_READ, events_write
from finsync.bootstrap import (
    approved_config,
    build_engine,
    build_hub,
    build_stripe_pollers,
    build_stripe_verifier,
)
from finsync.cli import output
from finsync.cli.common import ConfigPath, Json, authorised, guarded
from finsync.config import load_config

app = typer.Typer(help="Stripe as a billing source (catch-up polling) and as billing's books "
                       "(the local mirror, verified against Stripe).", no_args_is_help=True)

VERIFY_DIFFERS_EXIT = 5  # code `stripe_mirror_differs`


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


@app.command()
def verify(source: Annotated[str, typer.Option(help="Stripe intake source.")] = "stripe",
           limit: Annotated[int, typer.Option(min=1, help="Objects to fetch again (one API "
                                                       "call each).")] = 1_000,
           update: Annotated[bool, typer.Option("--update", help="Record what differs as "
                                                "Stripe answers it now.")] = False,
           config: ConfigPath = None, as_json: Json = False) -> None:
    """Fetch mirrored Stripe objects again and compare the fields billing's books read;
    exits 5 when anything differs or Stripe refuses an object."""
    with guarded(as_json):
        loaded = load_config(config)
        authorised(loaded, events_write(source) if update else FINANCE_READ)
        engine = build_engine(loaded)
        try:
            result = build_stripe_verifier(loaded, engine, source).verify(limit=limit,
                                                                         update=update)
        finally:
            engine.dispose()
    message = (f"the mirror of {source} differs from Stripe: {len(result.differences)} "
               f"field(s), {len(result.refused)} object(s) refused")
    if as_json:
        error = {} if result.clean else {"error": {"code": "stripe_mirror_differs",
                                                   "message": message}}
        output.emit_json({**result.as_json(), **error})
        if not result.clean:
            raise typer.Exit(VERIFY_DIFFERS_EXIT)
        return
    output.counts_table(f"stripe verify of {source}", {
        "objects mirrored": result.held, "checked": result.checked,
        "fields that differ": len(result.differences), "refused by Stripe": len(result.refused),
        "updated": result.updated, **{f"not verified: {k}": n
                                      for k, n in sorted(result.not_verified.items())}})
    if result.differences:
        output.table("differences", ["object", "field", "mirror", "Stripe"],
                     [[f"{d.object_type}:{d.object_id}", d.field, d.mirrored, d.stripe]
                      for d in result.differences])
    if result.refused:
        output.table("refused", ["object", "Stripe's answer"], [list(r) for r in result.refused])
    if not result.clean:
        output.fail(message, "stripe_mirror_differs", as_json=False,
                    exit_code=VERIFY_DIFFERS_EXIT)
