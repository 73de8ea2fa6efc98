"""Golden cases: each JSON case file in cases/ is a contract in and the figures out
(docs/revrec/cases.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.revrec.casecheck import CASES, check_case

CASE_FILES = sorted(CASES.glob("*.json"))


def test_golden_cases_cover_every_rule() -> None:
    rules = {path.stem.split("_")[0] for path in CASE_FILES}
    assert rules >= {"allocation", "variable", "modification", "price", "credit", "schedule"}


@pytest.mark.parametrize("path", CASE_FILES, ids=[p.stem for p in CASE_FILES])
def test_golden_case_reproduces_hand_worked_figures(path: Path) -> None:
    check_case(path)
