"""`GET /v1/tax/liability` on SQLite and PostgreSQL: the CLI's figures, bounded inputs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from finsync.api.app import create_app
from finsync.auth.principal import FINANCE_READ
from finsync.bootstrap import build_finance
from finsync.views.services import Services, build_services
from tests import authkit
from tests.hubkit import shipped_config
from tests.unit.tax.support import invoice_of, line, request


@pytest.fixture
def served(engine: Engine, tmp_path: Path) -> Iterator[tuple[TestClient, Services]]:
    config = shipped_config(tmp_path)
    finance = build_finance(config, engine=engine)
    services = build_services(config, finance)
    app = create_app(finance.hub, services=services)
    with authkit.client(app, engine, [FINANCE_READ]) as client:
        yield client, services


def test_liability_of_committed_documents(served: tuple[TestClient, Services]) -> None:
    client, services = served
    assert services.tax is not None
    # Texas 6.25 %: 800.00 x 0.0625 = 50.00; California: not taxable.
    for document_id, region, amount in (("inv_tx", "TX", "800.00"), ("inv_ca", "CA", "90.00")):
        ask = request("US", region, line(amount), document_id=document_id,
                      on=date(2026, 3, 2))
        services.tax.commit(invoice_of(ask, services.tax.quote(ask)), f"{document_id}:tax")
    response = client.get("/v1/tax/liability?entity=le_us&period=2026-03")
    assert response.status_code == 200, response.text
    rows = {r["jurisdiction"]: r for r in response.json()["jurisdictions"]}
    assert (rows["US-TX"]["tax_charged"], rows["US-TX"]["net_tax_due"]) == ("50.00", "50.00")
    assert (rows["US-CA"]["not_taxable_sales"], rows["US-CA"]["net_tax_due"]) == ("90.00",
                                                                                  "0.00")


@pytest.mark.parametrize(("query", "status"), [
    ("entity=le_xx&period=2026-03", 404),   # not a configured entity
    ("entity=le_us&period=2026-13", 422),   # not a month
    ("entity=le_us", 422),                  # the month is required
    ("entity=" + "x" * 65 + "&period=2026-03", 422),
])
def test_bad_parameters_are_refused(served: tuple[TestClient, Services], query: str,
                                    status: int) -> None:
    client, _ = served
    assert client.get(f"/v1/tax/liability?{query}").status_code == status
