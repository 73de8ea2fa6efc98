"""`finsync tax …` through Typer's runner on SQLite and PostgreSQL, as a mapped principal."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from finsync.storage.db import make_engine
from finsync.systems.tax.config_file import load_tax_rules
from finsync.systems.tax.migrate import upgrade
from finsync.systems.tax.service import TaxService
from tests.clikit import AUDITOR, cli_json, login_as, with_auth
from tests.unit.tax.support import invoice_of, line, request


@pytest.fixture(autouse=True)
def _configured(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FINSYNC_DATABASE_URL", db_url)
    monkeypatch.delenv("FINSYNC_TOKEN", raising=False)
    (tmp_path / "finsync.toml").write_text(with_auth())


def test_quote_answers_the_jurisdiction_line() -> None:
    # Washington, 6.5 %: 200.00 x 0.065 = 13.00
    answer = cli_json(["tax", "quote", "--country", "US", "--region", "WA", "--amount",
                       "200.00", "--on", "2026-03-01"])
    assert answer["lines"] == [{
        "line": "1", "net": "200.00", "tax": "13.00", "currency": "USD",
        "jurisdiction": "US-WA", "tax_type": "sales_tax", "rate": "0.065",
        "treatment": "taxable", "taxable": "200.00", "amount": "13.00"}]


def test_quote_of_an_unknown_state_is_refused_with_its_code() -> None:
    answer = cli_json(["tax", "quote", "--country", "US", "--region", "ZZ", "--amount",
                       "200.00"], code=1)
    assert answer["error"]["code"] == "unknown_tax_jurisdiction"


def test_exemption_certificates_add_list_revoke(monkeypatch: pytest.MonkeyPatch) -> None:
    added = cli_json(["tax", "exemptions", "add", "cert_1", "--customer", "cus_1",
                      "--jurisdiction", "US-NY", "--from", "2026-01-01", "--to", "2026-07-01"])
    assert added["certificates"][0]["valid_to"] == "2026-07-01"
    exempt = cli_json(["tax", "quote", "--country", "US", "--region", "NY", "--amount",
                       "100.00", "--customer", "cus_1", "--on", "2026-06-30"])
    assert exempt["lines"][0]["treatment"] == "exempt"
    assert cli_json(["tax", "exemptions", "list", "--customer", "cus_1"])["certificates"][0][
        "revoked"] is False
    login_as(monkeypatch, AUDITOR)  # reads, but may not change master data
    assert cli_json(["tax", "exemptions", "revoke", "cert_1"], code=1)["error"]["code"] \
        == "forbidden"


def test_liability_reports_the_committed_documents(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    service = TaxService(engine, lambda: datetime(2026, 3, 31, tzinfo=UTC))
    service.load_rules(load_tax_rules())
    ask = request("US", "NY", line("1000.00"), on=date(2026, 3, 5))
    service.commit(invoice_of(ask, service.quote(ask)), "evt_1:tax")
    engine.dispose()
    report = cli_json(["tax", "liability", "--entity", "le_us", "--period", "2026-03"])
    # 1,000.00 x 4 % = 40.00 owed to New York
    assert report["jurisdictions"] == [{
        "jurisdiction": "US-NY", "currency": "USD", "taxable_sales": "1000.00",
        "exempt_sales": "0.00", "not_taxable_sales": "0.00", "reverse_charge_sales": "0.00",
        "tax_charged": "40.00", "tax_credited": "0.00", "net_tax_due": "40.00"}]
    assert cli_json(["tax", "liability", "--entity", "le_us", "--period", "2026-13"],
                    code=1)["error"]["code"] == "domain_error"
