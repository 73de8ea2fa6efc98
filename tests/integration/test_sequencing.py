"""Per-aggregate ordering: versions apply in order, gaps park, late gaps become exceptions."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import Engine, select

from finsync.domain.errors import ExceptionClass
from finsync.storage.db import transaction
from finsync.storage.schema import events
from tests.builders import contract_doc, envelope
from tests.hubkit import Clock, ingest, make_hub, settings

ROUTES = {"contract.created": ("ledger",), "contract.amended": ("ledger",)}


def _version(version: int, seats: int = 0, source_event_id: str | None = None) -> bytes:
    doc = contract_doc("con_1", version, seats or 100 * version, "120.00")
    if version == 1:
        payload, type_ = {"contract": doc}, "contract.created"
    else:
        payload, type_ = {"amendment": {
            "id": f"amd_{version}", "contract_id": "con_1", "version": version,
            "effective_date": "2026-05-16", "reason": "upgrade", "changes": [],
            "contract": doc}}, "contract.amended"
    return json.dumps(envelope(type_, source_event_id or f"v{version}",
                               ("subscription_contract", "con_1", version), payload,
                               correlation_id=f"amd-{version}")).encode()


def _statuses(engine: Engine) -> dict[int, str]:
    with transaction(engine) as conn:
        rows = conn.execute(select(events.c.aggregate_version, events.c.status))
        return {int(v): str(s) for v, s in rows}


def test_later_version_parks_until_the_gap_fills(engine: Engine, tmp_path: Path) -> None:
    hub = make_hub(engine, tmp_path, hub_settings=settings({}))
    ingest(hub, [_version(3), _version(2)])
    hub.run_until_idle()
    assert _statuses(engine) == {2: "parked", 3: "parked"}
    ingest(hub, [_version(1)])
    hub.run_until_idle()
    assert _statuses(engine) == {1: "accepted", 2: "accepted", 3: "accepted"}
    with transaction(engine) as conn:
        order = conn.execute(select(events.c.aggregate_version).order_by(events.c.position))
        assert [v for (v,) in order] == [3, 2, 1]  # arrival order differs from apply order


def test_deliveries_go_out_in_version_order(engine: Engine, tmp_path: Path) -> None:
    from finsync.connectors.filedrop.ledger import FileDropLedger
    from finsync.hub.target import ledger_target

    class ContractLedger:
        """The file-drop ledger, also taking contract events (to observe their order)."""

        def __init__(self) -> None:
            self.inner = ledger_target(FileDropLedger("ledger", tmp_path))
            self.system, self.seen = "ledger", []

        def handles(self, event_type: str) -> bool:
            return True

        def deliver(self, event, ctx):  # type: ignore[no-untyped-def]
            self.seen.append(event.aggregate().version)
            from finsync.connectors.ports import Receipt
            return Receipt(f"x-{ctx.delivery_key}")

        def milestone(self, event_type: str) -> None:
            return None

        def find_receipt(self, key: str) -> None:
            return None

    target = ContractLedger()
    hub = make_hub(engine, tmp_path, targets={"ledger": target},
                   hub_settings=settings(ROUTES))
    ingest(hub, [_version(4), _version(2), _version(3), _version(1)])
    hub.run_until_idle()
    assert target.seen == [1, 2, 3, 4]


def test_gap_past_the_wait_opens_sequencing_error_that_closes_when_filled(
        engine: Engine, tmp_path: Path) -> None:
    clock = Clock()
    hub = make_hub(engine, tmp_path, hub_settings=settings({}, gap_wait_s=60), clock=clock)
    ingest(hub, [_version(2)])
    hub.run_until_idle()
    assert hub.exceptions() == []
    clock.advance(61)
    hub.run_until_idle()
    (error,) = hub.exceptions()
    assert error["class"] == ExceptionClass.SEQUENCING_ERROR
    assert "waits for v1" in error["summary"]
    ingest(hub, [_version(1)])
    hub.run_until_idle()
    assert hub.exceptions() == []
    (closed,) = hub.exceptions(status="resolved")
    assert closed["resolution_note"].startswith("gap filled")
    assert _statuses(engine) == {1: "accepted", 2: "accepted"}


def test_same_version_with_other_payload_is_a_sequencing_error(engine: Engine,
                                                               tmp_path: Path) -> None:
    hub = make_hub(engine, tmp_path, hub_settings=settings({}))
    ingest(hub, [_version(1), _version(2), _version(2, seats=999, source_event_id="v2-other")])
    hub.run_until_idle()
    (error,) = hub.exceptions()
    assert error["class"] == ExceptionClass.SEQUENCING_ERROR
    assert "already holds another payload" in error["summary"]


def test_same_version_same_payload_from_another_id_is_a_duplicate(engine: Engine,
                                                                  tmp_path: Path) -> None:
    hub = make_hub(engine, tmp_path, hub_settings=settings({}))
    ingest(hub, [_version(1), _version(1, source_event_id="v1-redelivered")])
    hub.run_until_idle()
    assert hub.status()["duplicates_ignored"] == 1
    assert hub.exceptions() == []
