"""HubSpot test kit: the fixture CRM server as a process (tests/external/hubspot_server.py,
not HubSpot), its objects in the API's shapes, a finsync configuration with a HubSpot
source, and signed webhook requests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from finsync.config import FinsyncConfig, parse_config
from finsync.connectors.hubspot.signature import headers_for
from finsync.domain.events import BusinessDomain
from tests.stripekit import free_port

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "cpq" / "hubspot"
CRM = FIXTURES / "crm.json"
AMENDMENT = FIXTURES / "amendment.json"
WEBHOOK = FIXTURES / "webhook_deal.json"
TOKEN = "pat-na1-fixture-token"
SECRET, OLD_SECRET = "hubspot-client-secret-current", "hubspot-client-secret-previous"
WEBHOOK_PATH = "/v1/webhooks/hubspot/crm"
# The target URL as configured in the HubSpot app: what HubSpot signs (finsync may be
# behind a proxy that it does not see).
WEBHOOK_URL = "https://finsync.example.com" + WEBHOOK_PATH


def objects(path: Path = CRM) -> dict[str, dict[str, Any]]:
    data: dict[str, dict[str, Any]] = json.loads(path.read_text())
    data.pop("_about", None)
    return data


def api_shape(stored: Mapping[str, Any]) -> dict[str, Any]:
    """A stored fixture object as the API answers it with every association asked for."""
    answer = {k: v for k, v in stored.items() if k != "associations"}
    links = stored.get("associations") or {}
    if links:
        answer["associations"] = {kind: {"results": list(r)} for kind, r in links.items()}
    return answer


class FixtureCrm:
    """The running fixture server and its test controls."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def call(self, method: str, path: str, body: object = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def put(self, kind: str, stored: Mapping[str, Any]) -> None:
        self.call("PUT", f"/__fixture/{kind}/{stored['id']}", stored)

    def apply(self, changes: Mapping[str, Mapping[str, Any]]) -> None:
        for kind, items in changes.items():
            for stored in items.values():
                self.put(kind, stored)

    def outage(self, status: int, count: int, path: str = "") -> None:
        """The next `count` API requests (to `path` only, if given) answer `status`."""
        self.call("POST", "/__fixture/outage", {"status": status, "count": count,
                                                "path": path})

    def requests(self) -> int:
        return int(self.call("GET", "/__fixture/requests")["requests"])


def start_fixture_crm(tmp_dir: Path) -> Iterator[FixtureCrm]:
    port = free_port()
    objects_file = tmp_dir / "crm.json"
    objects_file.write_text(json.dumps(objects()))
    log = (tmp_dir / "hubspot-fixture.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.external.hubspot_server", str(port), str(objects_file),
         TOKEN], cwd=ROOT, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        stdout=log, stderr=subprocess.STDOUT)
    server = FixtureCrm(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                server.requests()
                break
            except (urllib.error.URLError, ConnectionError) as exc:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the HubSpot fixture server did not start: {exc}; "
                                       f"see {log.name}") from exc
                time.sleep(0.05)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def hubspot_config(db_url: str, base_url: str, **section: Any) -> FinsyncConfig:
    """A hub whose CRM (and so customer master and CPQ) is the HubSpot source `crm`."""
    return parse_config({
        "hub": {"database_url": db_url},
        "ownership": {d.value: "billing" for d in BusinessDomain} | {
            "customer": "crm", "commercial": "crm", "ledger": "ledger", "revenue": "revrec",
            "tax": "tax"},
        "sources": {"crm": "hubspot"},
        "hubspot": {"crm": {"legal_entity": "le_us", "webhook_url": WEBHOOK_URL,
                            "base_url": base_url,
                            "access_token_env": "FINSYNC_TEST_HUBSPOT_TOKEN",
                            "client_secrets": [{"env": "FINSYNC_TEST_HUBSPOT_SECRET"},
                                               {"env": "FINSYNC_TEST_HUBSPOT_SECRET_OLD"}],
                            **section}},
    }, ROOT)


def signed(body: bytes, secret: str = SECRET, at_ms: int | None = None,
           uri: str = WEBHOOK_URL) -> dict[str, str]:
    stamp = int(datetime.now(UTC).timestamp() * 1000) if at_ms is None else at_ms
    return headers_for(secret, uri, body, stamp)
