"""The HubSpot client (the official SDK, answers kept raw) against the fixture CRM server
process (tests/external/hubspot_server.py, NOT HubSpot): what it reads, and how each
failure is classed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from finsync.connectors.calls import Call
from finsync.connectors.hubspot.client import ClientSettings, HubSpotClient
from finsync.domain.errors import PermanentError, TransientError
from tests.hubspotkit import TOKEN, FixtureCrm, start_fixture_crm
from tests.stripekit import free_port


class Calls:
    def __init__(self) -> None:
        self.calls: list[Call] = []

    def record(self, call: Call) -> None:
        self.calls.append(call)


@pytest.fixture(scope="module")
def crm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FixtureCrm]:
    yield from start_fixture_crm(tmp_path_factory.mktemp("hubspot"))


def client(base_url: str, token: str = TOKEN, **settings: object) -> HubSpotClient:
    return HubSpotClient("crm", ClientSettings(token, base_url, timeout_s=5,
                                               **settings))  # type: ignore[arg-type]


def test_a_deal_is_read_with_its_associations_as_hubspot_sent_it(crm: FixtureCrm) -> None:
    calls = Calls()
    reader = HubSpotClient("crm", ClientSettings(TOKEN, crm.base_url, timeout_s=5),
                           recorder=calls)
    deal = reader.deal("9001")
    assert deal["properties"]["dealstage"] == "closedwon"
    assert "hubspot_owner_id" not in deal["properties"]  # not asked for, not answered
    assert [r["id"] for r in deal["associations"]["line_items"]["results"]] == ["4001"]
    (item,) = reader.line_items(["4001"])
    assert item["properties"]["quantity"] == "500"
    assert [(c.method, c.endpoint, c.status) for c in calls.calls] == [
        ("GET", "/crm/v3/objects/deals/9001", "200"),
        ("POST", "/crm/v3/objects/line_items/batch/read", "200")]
    assert all(TOKEN not in str(c) for c in calls.calls)  # never the token


def test_failures_are_classed(crm: FixtureCrm) -> None:
    with pytest.raises(PermanentError, match="404"):
        client(crm.base_url).deal("404404")
    with pytest.raises(TransientError, match="401"):  # a token being rotated: retried
        client(crm.base_url, "pat-na1-wrong").deal("9001")
    with pytest.raises(PermanentError, match="did not return line items"):
        client(crm.base_url).line_items(["4001", "4999"])
    with pytest.raises(PermanentError, match="over 64 bytes"):
        client(crm.base_url, answer_max_bytes=64).deal("9001")
    crm.outage(429, 1)
    with pytest.raises(TransientError, match="429"):
        client(crm.base_url).company("7001")
    with pytest.raises(TransientError, match="unreachable"):
        client(f"http://127.0.0.1:{free_port()}").deal("9001")
