"""A stored state reads back equal to itself, for every golden case."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from finsync.domain.invoice import DocumentLine, Invoice
from finsync.domain.money import Money
from finsync.domain.refs import ExternalRefs
from finsync.systems.revrec import (
    InvoiceRecorded,
    PriceChangeKind,
    TransactionPriceChanged,
    schedules,
)
from finsync.systems.revrec.serial import dumps_event, dumps_state, loads_event, loads_state
from tests.unit.revrec.casecheck import CASES, load

CASE_FILES = sorted(CASES.glob("*.json"))


@pytest.mark.parametrize("path", CASE_FILES, ids=[p.stem for p in CASE_FILES])
def test_serialised_state_round_trips_exactly(path: Path) -> None:
    state = load(path).state()
    again = loads_state(dumps_state(state))
    assert again == state
    assert schedules(again) == schedules(state)
    assert dumps_state(again) == dumps_state(state)


def test_state_stored_before_billing_anchors_decodes_to_the_defaults() -> None:
    # A contract on its start-date calendar, by day, is stored without the two keys (as every
    # state stored before they existed); a basis stored before it kept its price book has
    # none. Both read back at their defaults.
    state = load(CASES / "allocation_relative_ssp.json").state()
    stored = json.loads(dumps_state(state))
    assert "billing_anchor" not in stored["contract"] and "proration" not in stored["contract"]
    for ob in stored["obligations"]:
        for segment in ob["segments"]:
            del segment["basis"]["book"]
    again = loads_state(json.dumps(stored))
    assert again.contract == state.contract
    assert all(s.basis.book is None for ob in again.obligations for s in ob.segments)
    assert schedules(again) == schedules(state)
@pytest.mark.parametrize("path", CASE_FILES, ids=[p.stem for p in CASE_FILES])
def test_every_event_round_trips_as_the_event_log_keeps_it(path: Path) -> None:
    for item in load(path).events:
        assert loads_event(*dumps_event(item.event)) == item.event


def test_an_event_stored_before_a_field_existed_reads_with_its_default() -> None:
    """`promised_before` (added later) is left out at its default and read back as None."""
    change = TransactionPriceChanged("evt_tp", date(2026, 7, 1), Money.of(1, "USD"),
                                     PriceChangeKind.VOLUME_TRUE_UP)
    kind, text = dumps_event(change)
    assert "promised_before" not in json.loads(text)
    assert loads_event(kind, text) == change
    day, ten = date(2026, 1, 1), Money.of(10, "USD")
    lines = (DocumentLine("il_1", "prod", "ln_1", 1, ten, Money.of(0, "USD"), day, day),)
    invoice = Invoice("in_1", "INV-1", "cus", "con", 1, "le_us", "USD", day, day, lines, ten,
                      Money.of(0, "USD"), ten, ExternalRefs.of({"stripe": "in_abc"}))
    event = InvoiceRecorded("evt_inv", invoice)
    assert loads_event(*dumps_event(event)) == event
