"""The quote-to-cash list (`GET /v1/cpq/contracts`, `hub.cpq_contracts`) on SQLite and
PostgreSQL: orders counted per state, contracts paged by id with their latest version's
order state, filtered by state; finance:read only; bad parameters refused."""

from __future__ import annotations

from typing import Any

from finsync.api.app import create_app
from finsync.auth.principal import AUDIT_READ, FINANCE_READ
from finsync.hub import cpq_contracts, cpq_status
from finsync.hub.service import Hub
from tests import authkit
from tests.integration.test_quote_to_cash import (
    RecordingPlatform,
    approve,
    load,
)
from tests.integration.test_quote_to_cash import hub as hub
from tests.integration.test_quote_to_cash import platform as platform
from tests.q2ckit import contract, line, seats

# The hub and platform fixtures above are test_quote_to_cash's (a recording billing).


def _three_contracts(hub: Hub) -> None:
    """A: v1 and v2 sent; B: v1 held (product MYSTERY is not in the map); C: v1 sent."""
    load(hub)
    approve(hub, contract(1, seats(500), contract_id="A"),
            contract(2, seats(800), contract_id="A"),
            contract(1, seats(10), line("L-x", "MYSTERY", 2, "10.00"), contract_id="B"),
            contract(1, seats(20), contract_id="C"))


def _get(client: Any, query: str = "") -> dict[str, Any]:
    answer = client.get(f"/v1/cpq/contracts{query}")
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def test_the_list_counts_orders_per_state_and_pages_contracts(
        hub: Hub, platform: RecordingPlatform) -> None:
    _three_contracts(hub)
    reader = authkit.client(create_app(hub), hub.engine, [FINANCE_READ])
    found = _get(reader)
    # Four orders: A's two and C's one sent, B's held (3 + 1); nothing applied yet.
    assert found["counts"] == {"held": 1, "sent": 3, "refused": 0, "failed": 0,
                               "applied": 0, "mismatch": 0}
    assert (found["not_applied"], found["total"]) == (1, 3)
    assert [(c["contract_id"], c["cpq_version"], c["quote_id"], c["order_state"],
             c["orders"], c["unresolved"]) for c in found["contracts"]] == [
        ("A", 2, "Q-A-2", "sent", {"sent": 2}, 0),
        ("B", 1, "Q-B-1", "held", {"held": 1}, 1),
        ("C", 1, "Q-C-1", "sent", {"sent": 1}, 0)]
    # B's held order is a master_data_mismatch; its money at stake is the status's.
    status = cpq_status.contract_status(hub.engine, "B")
    assert status is not None
    (held,) = status.versions[0].exceptions
    # 10 seats x 120.00 + 2 x 10.00 = 1,220.00 USD held back.
    assert found["contracts"][1]["at_stake"] == [held.at_stake] == [
        {"amount": "1220.00", "currency": "USD"}]
    paged = _get(reader, "?limit=1&offset=1")
    assert (paged["total"], [c["contract_id"] for c in paged["contracts"]]) == (3, ["B"])
    held = _get(reader, "?state=held")
    assert (held["total"], [c["contract_id"] for c in held["contracts"]]) == (1, ["B"])
    assert held["counts"] == found["counts"]  # the counts are over every contract
    assert _get(reader, "?state=refused")["contracts"] == []


def test_the_lists_state_agrees_with_each_contracts_status(
        hub: Hub, platform: RecordingPlatform) -> None:
    _three_contracts(hub)
    page = cpq_contracts.contracts(hub.engine)
    for row in page.rows:
        status = cpq_status.contract_status(hub.engine, row.contract_id)
        assert status is not None
        latest = status.versions[-1]
        assert (row.cpq_version, row.quote_id, row.order_state) == (
            latest.cpq_version, latest.quote_id, latest.order_state)
    assert cpq_contracts.not_applied(hub.engine) == 1


def test_the_list_is_empty_before_any_cpq_version(hub: Hub) -> None:
    reader = authkit.client(create_app(hub), hub.engine, [FINANCE_READ])
    found = _get(reader)
    assert (found["total"], found["contracts"], found["not_applied"]) == (0, [], 0)
    assert set(found["counts"].values()) == {0}


def test_the_list_refuses_bad_parameters_and_other_scopes(hub: Hub) -> None:
    app = create_app(hub)
    reader = authkit.client(app, hub.engine, [FINANCE_READ])
    for query in ("?state=lost", "?limit=0", "?limit=201", "?offset=-1",
                  f"?offset={2**63}"):
        assert reader.get(f"/v1/cpq/contracts{query}").status_code == 422, query
    stranger = authkit.client(app, hub.engine, [AUDIT_READ])
    assert stranger.get("/v1/cpq/contracts").status_code == 403
