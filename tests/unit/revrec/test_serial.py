"""A stored state reads back equal to itself, for every golden case."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finsync.systems.revrec import schedules
from finsync.systems.revrec.serial import dumps_state, loads_state
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
