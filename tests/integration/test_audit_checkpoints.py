"""Checkpoints are signed by the daily job and at each `finsync close`, with the key named
in `[audit]`; without a key, nothing is signed and nothing fails. On both backends."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from finsync.audit.checkpoint import every
from finsync.bootstrap import Finance, build_daily, build_finance
from finsync.config import DEFAULT_CONFIG, parse_config
from finsync.demo.clock import SimClock
from finsync.storage.db import reading

KEY_ENV = "FINSYNC_TEST_AUDIT_KEY"


def _finance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str,
             audit: dict[str, str]) -> Finance:
    monkeypatch.setenv("FINSYNC_DATABASE_URL", db_url)
    monkeypatch.setenv(KEY_ENV, "22" * 32)
    data = tomllib.loads(DEFAULT_CONFIG.read_text())
    config = parse_config({**data, "audit": audit}, tmp_path)
    return build_finance(config, clock=SimClock(datetime(2026, 2, 3, 9, tzinfo=UTC)))


@pytest.fixture
def signing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
            db_url: str) -> Iterator[Finance]:
    finance = _finance(tmp_path, monkeypatch, db_url, {"signing_key_env": KEY_ENV})
    yield finance
    finance.dispose()


def _reasons(engine: Engine) -> list[str]:
    with reading(engine) as conn:
        return [c.reason for c in every(conn)]


def test_a_close_ends_with_a_signed_checkpoint(signing: Finance) -> None:
    result = signing.close.close("le_us", "2026-01", "gl.accountant")
    assert result.status == "closed"
    assert _reasons(signing.hub.engine) == ["close:le_us:2026-01"]
    verdict = signing.audit.verify()
    assert verdict.tamper is None and verdict.checkpoint_problems == ()


def test_the_daily_job_reconciles_and_signs(signing: Finance) -> None:
    build_daily(signing)(date(2026, 2, 2))
    assert _reasons(signing.hub.engine) == ["daily"]
    assert signing.audit.verify().ok
    runs = signing.recon.stored(date(2026, 2, 2))
    assert runs
    # A restart the same day (a new daily job) does not reconcile that day again.
    build_daily(signing)(date(2026, 2, 2))
    assert signing.recon.stored(date(2026, 2, 2)) == runs


def test_without_a_key_nothing_is_signed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         db_url: str) -> None:
    finance = _finance(tmp_path, monkeypatch, db_url, {})
    try:
        build_daily(finance)(date(2026, 2, 2))
        assert finance.close.close("le_us", "2026-01", "gl.accountant").status == "closed"
        assert _reasons(finance.hub.engine) == []
    finally:
        finance.dispose()
