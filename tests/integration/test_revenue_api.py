"""The console's Revenue and AR reads (`/v1/revenue/…`, `/v1/ar/…`) after the reference
workflow went through the hub: each figure is the one the CLI prints for the same books
(`finsync revrec waterfall`, `rpo`, `ledger aging`), the roll-forward foots month by month,
and what cannot be answered is refused with a code."""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from finsync.api.app import create_app
from finsync.auth.principal import FINANCE_READ
from finsync.bootstrap import build_finance
from finsync.cli.main import app as cli_app
from finsync.config import load_config
from finsync.domain.clock import first_of_next_month
from finsync.systems.revrec.balance import balances
from finsync.views.services import Services, build_services
from tests import authkit
from tests.hubkit import run_settled

runner = CliRunner()
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "reference-workflow.jsonl"


def _cli(args: list[str], code: int = 0) -> Any:
    result = runner.invoke(cli_app, [*args, "--json"])
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory,
           module_db_url: str) -> Iterator[tuple[TestClient, Services]]:
    """The reference workflow through the hub, and the API over the same books, read by a
    `finance:read` token. Once per backend: every test here only reads these books (the
    workflow took some 4 s a test, 60 s a run, for the same books each time)."""
    folder = tmp_path_factory.mktemp("revenue-api")
    with pytest.MonkeyPatch.context() as env:
        env.chdir(folder)
        env.setenv("FINSYNC_DATABASE_URL", module_db_url)
        _cli(["init"])
        _cli(["ingest", str(EXAMPLE)])
        run_settled(_cli)
        config = load_config(folder / "finsync.toml")
        finance = build_finance(config)
        services = build_services(config, finance)
        app = create_app(finance.hub, services=services)
        try:
            with authkit.client(app, finance.hub.engine, [FINANCE_READ]) as client:
                yield client, services
        finally:
            finance.hub.engine.dispose()


def _get(client: TestClient, url: str, status: int = 200) -> Any:
    response = client.get(url)
    assert response.status_code == status, response.text
    return response.json()


def test_waterfall_is_the_clis(served: tuple[TestClient, Services]) -> None:
    client, _ = served
    cli = _cli(["revrec", "waterfall", "-e", "le_us", "--from", "2026-01", "--to", "2026-12"])
    api = _get(client, "/v1/revenue/waterfall?entity=le_us&from=2026-01&to=2026-12")
    assert {k: api[k] for k in ("legal_entity", "months", "revenue", "gross", "contra")} == cli
    for month in cli["months"]:  # gross - contra = net, each month
        usd = {part: Decimal(cli[part]["USD"][month]) for part in ("gross", "contra", "revenue")}
        assert usd["gross"] - usd["contra"] == usd["revenue"], month
    (total,) = api["totals"]
    assert Decimal(total["amount"]) == sum(Decimal(v) for v in cli["revenue"]["USD"].values())
    assert total["currency"] == "USD" and Decimal(total["amount"]) > 0


def test_rpo_is_the_clis(served: tuple[TestClient, Services]) -> None:
    client, _ = served
    for day in ("2026-01-01", "2026-05-20", "2026-09-01"):
        cli = _cli(["revrec", "rpo", "-e", "le_us", "--as-of", day])
        assert _get(client, f"/v1/revenue/rpo?entity=le_us&as_of={day}") == cli


def test_roll_forward_foots_and_chains(served: tuple[TestClient, Services]) -> None:
    """opening + billed - recognised = closing each month; a month's closing is the next
    month's opening; recognised is the waterfall's month."""
    client, _ = served
    data = _get(client, "/v1/revenue/roll-forward?entity=le_us&from=2026-01&to=2026-12")
    fall = _get(client, "/v1/revenue/waterfall?entity=le_us&from=2026-01&to=2026-12")
    rows = data["rows"]
    assert [r["month"] for r in rows] == fall["months"]
    assert data == _cli(["revrec", "roll-forward", "-e", "le_us", "--from", "2026-01",
                         "--to", "2026-12"])
    assert data["foots"] and data["not_footing"] == 0
    for row in rows:
        opening, billed, recognised, closing = (Decimal(row[k]) for k in (
            "opening", "billed", "recognised", "closing"))
        assert opening + billed - recognised == closing, row
        assert row["recognised"] == fall["revenue"]["USD"][row["month"]]
        assert Decimal(row["invoiced"]) - Decimal(row["credited"]) == billed
    for before, after in itertools.pairwise(rows):
        assert before["closing"] == after["opening"]
    # The credit memo of 2026-08-05 is taken off August's billings.
    august = next(r for r in rows if r["month"] == "2026-08")
    assert Decimal(august["credited"]) > 0
    assert sum(Decimal(r["billed"]) for r in rows) > 0


def test_roll_forward_is_each_contracts_balances_added_up(
        served: tuple[TestClient, Services]) -> None:
    """The sums read in SQL from the position rows equal each contract's balances computed
    from its state (`balance.balances`), added up."""
    client, services = served
    assert services.revenue is not None
    states = services.revenue.states("le_us")
    data = _get(client, "/v1/revenue/roll-forward?entity=le_us&from=2025-12&to=2027-02")
    for row in data["rows"]:
        start = date.fromisoformat(f"{row['month']}-01")
        end = first_of_next_month(start)
        opening = [balances(s, start) for s in states]
        closing = [balances(s, end) for s in states]
        assert Decimal(row["opening_deferred_revenue"]) == sum(
            (b.deferred_revenue.amount for b in opening), Decimal(0)), row
        assert Decimal(row["closing_contract_asset"]) == sum(
            (b.contract_asset.amount + b.unbilled_receivable.amount for b in closing),
            Decimal(0)), row
        assert Decimal(row["billed"]) == sum(
            (c.billed.amount - o.billed.amount for o, c in zip(opening, closing, strict=True)),
            Decimal(0)), row
        assert Decimal(row["credited"]) == -sum(
            (b.amount.amount for s in states for b in s.billings
             if b.amount.amount < 0 and start <= b.issued_on < end), Decimal(0)), row


def test_contract_schedule_shows_the_amendment_and_its_reason(
        served: tuple[TestClient, Services]) -> None:
    client, _ = served
    listed = _get(client, "/v1/revenue/contracts?entity=le_us")
    contracts = {c["contract"]: c for c in listed["contracts"]}
    assert contracts["con_acme_2026"]["version"] == 2
    data = _get(client, "/v1/revenue/contracts/con_acme_2026?period=quarter")
    assert data["contract"] == "con_acme_2026" and data["customer"] == "cus_acme"
    (modification,) = data["modifications"]
    assert modification["paragraph"].startswith("606-10-25-")
    assert modification["reason"] and modification["amendment"] == "amd_acme_0002"
    revised = [ob for ob in data["obligations"] if len(ob["revisions"]) > 1]
    assert revised, data["obligations"]
    allocated = sum(Decimal(r["allocated"]) for r in data["allocation"])
    assert allocated == Decimal(data["transaction_price"])
    assert data["revenue"]["periods"][0]["period"].endswith("-Q1")


def test_aging_subledgers_and_credits_are_the_clis(
        served: tuple[TestClient, Services]) -> None:
    client, _ = served
    for day in ("2026-01-15", "2026-05-31", "2026-12-31"):
        (cli,) = _cli(["ledger", "aging", "-e", "le_us", "--as-of", day]).values()
        api = _get(client, f"/v1/ar/aging?entity=le_us&as_of={day}")
        assert sorted(api["customers"], key=lambda c: c["customer"]) == cli["customers"]
        assert api["customers_count"] == len(cli["customers"])
        chart = api["chart"]
        for bucket, total in api["totals"].items():  # the chart hides no customer
            assert sum((Decimal(c[bucket]) for c in chart["customers"]),
                       Decimal(chart["others"][bucket])) == Decimal(total)
        assert Decimal(api["totals"]["total"]) == sum(
            (Decimal(c["total"]) for c in cli["customers"]), Decimal(0))
        subledgers = _get(client, f"/v1/ar/subledgers?as_of={day}")
        mine = {r["control"]: r for r in subledgers["rows"] if r["legal_entity"] == "le_us"}
        assert {k: {"subledger": r["subledger"], "control": r["gl"],
                    "difference": r["difference"]} for k, r in mine.items()} \
            == cli["subledgers"]
        assert subledgers["disagreeing"] == 0
        credits = _get(client, f"/v1/ar/credits?entity=le_us&as_of={day}")
        assert credits["total"] == cli["subledgers"]["customer_credits"]["subledger"]
        assert Decimal(credits["total"]) == sum(
            (Decimal(c["booked"]["amount"]) for c in credits["credits"]), Decimal(0))
    # Between the credit memo (2026-08-05) and its refund (2026-08-12) the customer holds
    # a credit: the credits list shows it, adding up to the customer-credits subledger.
    held = _get(client, "/v1/ar/credits?entity=le_us&as_of=2026-08-10")
    assert held["count"] == len(held["credits"]) >= 1
    assert Decimal(held["total"]) == sum(
        (Decimal(c["booked"]["amount"]) for c in held["credits"]), Decimal(0)) > 0


REFUSED = [
    ("/v1/revenue/waterfall?entity=le_nowhere", 404, "unknown_entity"),
    ("/v1/ar/aging?entity=le_nowhere", 404, "unknown_entity"),
    ("/v1/revenue/contracts/con_nowhere", 404, "unknown_revenue_contract"),
    ("/v1/revenue/waterfall?from=2026-13", 422, "invalid_request"),
    ("/v1/revenue/waterfall?to=0000-01", 422, "invalid_request"),
    ("/v1/revenue/waterfall?from=2010-01&to=2026-12", 422, "domain_error"),  # > 120 months
    ("/v1/revenue/roll-forward?from=2026-05&to=2026-01", 422, "domain_error"),
    ("/v1/revenue/rpo?as_of=9999-12-31", 422, "domain_error"),
    ("/v1/ar/credits?limit=0", 422, "invalid_request"),
    ("/v1/revenue/contracts/con_acme_2026?period=fortnight", 422, "invalid_request"),
    # What PostgreSQL's text cannot hold is refused before any query, on both databases.
    ("/v1/revenue/contracts/con%00acme", 422, "invalid_request"),
    ("/v1/revenue/contracts?after=%00", 422, "invalid_request"),
    ("/v1/revenue/waterfall?entity=le%00us", 422, "invalid_request"),
    ("/v1/revenue/contracts/" + "c" * 256, 422, "invalid_request"),
    ("/v1/ar/aging?as_of=0001-01-01", 422, "domain_error"),
    ("/v1/revenue/rpo?as_of=2026-02-30", 422, "invalid_request"),
]


def test_what_cannot_be_answered_is_refused_with_a_code(
        served: tuple[TestClient, Services]) -> None:
    client, _ = served
    for url, status, code in REFUSED:
        assert _get(client, url, status)["error"]["code"] == code, url


def test_an_external_system_is_named_not_guessed(tmp_path: Path,
                                                 served: tuple[TestClient, Services]) -> None:
    """Without the embedded engine or ledger, the reports are that system's: 409."""
    client, services = served
    external = dataclasses.replace(services, revenue=None, ledger=None)
    app = create_app(services.finance.hub, services=external)
    with authkit.client(app, services.finance.hub.engine, [FINANCE_READ]) as other:
        for url in ("/v1/revenue/waterfall", "/v1/revenue/rpo", "/v1/ar/aging",
                    "/v1/ar/subledgers"):
            assert _get(other, url, 409)["error"]["code"] == "system_external"
    del client, tmp_path
