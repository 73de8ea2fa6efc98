"""`finsync generate`: a small generated company reconciles, and the seed decides the books.

Small on purpose (a few customers, a few months): the generator's cost per billing command
grows with the company until billing loads only what a command changes.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from finsync.bootstrap import Finance, build_finance, build_ledger_service
from finsync.config import DEFAULT_CONFIG, FinsyncConfig, parse_config
from finsync.generator.run import DatabaseNotEmptyError, Request, generate
from tests.clikit import cli_json, with_auth

AS_OF = date(2026, 5, 31)
SMALL = Request(customers=12, months=5, seed=11)


def _config(url: str, folder: Path) -> FinsyncConfig:
    data = tomllib.loads(DEFAULT_CONFIG.read_text())
    data["hub"]["database_url"] = url
    return parse_config(data, folder)


@pytest.fixture(autouse=True)
def _no_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FINSYNC_DATABASE_URL", raising=False)
    monkeypatch.delenv("FINSYNC_CONFIG", raising=False)


@pytest.fixture
def finance_of() -> Iterator[Any]:
    built: list[Finance] = []

    def build(config: FinsyncConfig) -> Finance:
        built.append(build_finance(config))
        return built[-1]
    yield build
    for finance in built:
        finance.dispose()


def _books(config: FinsyncConfig, finance: Finance) -> Any:
    ledger = build_ledger_service(config, finance.hub.engine)
    entries = [(e.id, e.legal_entity, e.posting_date, e.correlation_id,
                [(ln.account, ln.side, ln.amount) for ln in e.lines]) for e in ledger.entries()]
    balances = {entity: ledger.trial_balance(entity, AS_OF) for entity, _ in ledger.entities()}
    return entries, balances


def test_small_company_reconciles_with_nothing_open(db_url: str, tmp_path: Path,
                                                    finance_of: Any) -> None:
    config = _config(db_url, tmp_path)
    made = generate(config, SMALL)
    assert made["customers"] == 12 and made["invoices"] > 12 and made["payments"] > 0
    assert made["usage_records"] > 0 and made["amendments"] + made["cancellations"] > 0
    assert made["unresolved_exceptions"] == 0 and made["refused"] == {}
    assert made["closes"] == {"closed": 2 * SMALL.months}
    finance = finance_of(config)
    report = finance.recon.run(AS_OF)
    breaks = {c.name: [i.as_dict() for i in c.breaks] for c in report.checks if c.breaks}
    assert breaks == {}
    assert all(v.is_zero for v in report.total_variance().values())
    assert finance.triage.listing() == []


def test_same_seed_gives_the_same_books(db_url: str, tmp_path: Path, finance_of: Any) -> None:
    """On this backend and on a fresh SQLite file: the same seed, the same books."""
    request = Request(customers=6, months=3, seed=5)
    here = _config(db_url, tmp_path)
    there = _config(f"sqlite:///{tmp_path / 'again.db'}", tmp_path)
    first, second = generate(here, request), generate(there, request)
    drop = ("database", "seconds", "events_per_s", "seconds_by_part")
    assert {k: v for k, v in first.items() if k not in drop} == \
        {k: v for k, v in second.items() if k not in drop}
    books = _books(here, finance_of(here))
    assert books[0]  # there are journal entries to compare
    assert books == _books(there, finance_of(there))


def test_different_seeds_give_different_books(tmp_path: Path, finance_of: Any) -> None:
    configs = [_config(f"sqlite:///{tmp_path / f'{seed}.db'}", tmp_path) for seed in (1, 2)]
    for seed, config in zip((1, 2), configs, strict=True):
        generate(config, Request(customers=4, months=2, seed=seed))
    assert _books(configs[0], finance_of(configs[0])) != \
        _books(configs[1], finance_of(configs[1]))


def test_a_second_company_in_the_same_database_is_refused(tmp_path: Path) -> None:
    config = _config(f"sqlite:///{tmp_path / 'one.db'}", tmp_path)
    generate(config, Request(customers=1, months=1))
    with pytest.raises(DatabaseNotEmptyError):
        generate(config, Request(customers=1, months=1))


def test_cli_prints_one_summary_and_refuses_a_horizon_outside_the_fiscal_years(
        tmp_path: Path) -> None:
    target = tmp_path / "finsync.toml"
    target.write_text(with_auth())
    made = cli_json(["generate", "--customers", "2", "--months", "1", "--config", str(target)])
    assert made["customers"] == 2 and made["events"] > 0 and made["seconds"] >= 0
    refused = cli_json(["generate", "--customers", "2", "--months", "36", "--config",
                        str(target)], code=1)
    assert refused["error"]["code"] == "config_error"
