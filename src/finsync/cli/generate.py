"""`finsync generate`: a realistic company on the embedded systems, from a seed, for
benchmarks, demos and load tests. The plan and its execution are `finsync.generator`'s;
this module parses, calls and prints."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from finsync.auth.principal import ADMIN
from finsync.cli import output
from finsync.cli.common import ConfigPath, Json, authorised, guarded
from finsync.config import load_config
from finsync.generator.run import CUSTOMERS_MAX, Request, generate

_SHOWN = ("customers", "subscriptions", "amendments", "renewals", "cancellations", "invoices",
          "credit_memos", "payments", "refunds", "usage_records", "billing_commands", "events",
          "unresolved_exceptions")


def command(customers: Annotated[int, typer.Option(min=1, max=CUSTOMERS_MAX,
                                                  help="How many customers.")],
            months: Annotated[int, typer.Option(min=1, help="Months of business, each "
                                                "closed.")],
            seed: Annotated[int, typer.Option(help="Same seed, same company.")] = 1,
            config: ConfigPath = None, as_json: Json = False) -> None:
    """Generate a company (plans, amendments, renewals, cancellations, usage, credits,
    refunds, payments; two entities and currencies) into an empty database, month by month,
    through billing and the hub, closing every month."""
    with guarded(as_json):
        settings = load_config(config)
        authorised(settings, ADMIN)
        with output.progress_bar(not as_json) as progress:
            result = generate(settings, Request(customers, months, seed), progress)
        if as_json:
            output.emit_json(result)
        else:
            _print(result)


def _print(result: dict[str, Any]) -> None:
    output.console.print(f"generated into {result['database']}: seed {result['seed']}, "
                         f"{result['from']} to {result['until']}")
    output.counts_table("the company", {k: result[k] for k in _SHOWN})
    output.console.print(f"closes: {result['closes']}; refused by billing: "
                         f"{result['refused'] or 'none'}; skipped: {result['skipped'] or 'none'}")
    output.console.print(f"{result['events']} events in {result['seconds']} s "
                         f"({result['events_per_s']} events/s); check the books with "
                         f"`finsync reconcile --as-of <last day>`")

