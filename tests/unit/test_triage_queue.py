"""Which actions the console offers for an exception: triage's own rules, as a hint (the
action checks again)."""

from __future__ import annotations

from typing import Any

import pytest

from finsync.triage.queue import offered


def _row(klass: str, status: str = "open", *, delivery: int | None = None,
         raw: int | None = None) -> dict[str, Any]:
    return {"class": klass, "status": status, "delivery_id": delivery, "raw_event_id": raw}


@pytest.mark.parametrize(("row", "actions"), [
    (_row("closed_period", delivery=7), ["retry", "reroute", "resolve", "ignore"]),
    (_row("tax_failure", delivery=7), ["retry", "resolve", "ignore"]),
    (_row("mapping_error", raw=3), ["retry", "resolve", "ignore"]),
    # A break has nothing to send again: it closes when the books agree, or by hand.
    (_row("reconciliation_break"), ["resolve", "ignore"]),
    # Two bodies to choose from, nothing to retry.
    (_row("duplicate_event", delivery=7), ["resolve_duplicate", "resolve", "ignore"]),
    (_row("closed_period", "retrying", delivery=7), ["retry", "reroute", "resolve", "ignore"]),
])
def test_the_actions_that_apply_are_offered(row: dict[str, Any], actions: list[str]) -> None:
    assert offered(row) == actions


@pytest.mark.parametrize("status", ["awaiting_approval", "resolved", "ignored"])
def test_nothing_is_offered_while_waiting_or_once_closed(status: str) -> None:
    assert offered(_row("closed_period", status, delivery=7)) == []
