"""A fixture server for HubSpot's CRM v3 API: NOT HubSpot, a stand-in for the tests.

It serves, from a JSON file of objects built from HubSpot's published CRM object reference
(tests/fixtures/cpq/hubspot/crm.json), the few endpoints finsync's HubSpot connector calls,
in HubSpot's response shapes:

    GET  /crm/v3/objects/{type}/{id}?properties=…&associations=…   one object
    POST /crm/v3/objects/{type}/batch/read                         {"inputs": [{"id"}], …}

with HubSpot's error bodies (`{"status": "error", "message", "category"}`) for 401 (wrong or
no bearer token) and 404. Properties are answered only when asked for (as HubSpot does),
plus `hs_object_id`, `createdate` and `hs_lastmodifieddate`; associations only of the types
asked for.

Test controls, under `/__fixture/` (no token): `PUT /__fixture/{type}/{id}` replaces or adds an
object (an amendment in the CRM), `POST /__fixture/outage` `{"status": 503, "count": n}`
answers the next n API requests with that status (with `"path": "/crm/v3/objects/deals/9002"`
only the next n requests to that path: a rate limit met partway through a batch),
`GET /__fixture/requests` counts the API requests served.

    python -m tests.external.hubspot_server PORT OBJECTS_JSON TOKEN
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

DEFAULT_PROPERTIES = ("hs_object_id", "createdate", "hs_lastmodifieddate")
TYPES = ("deals", "companies", "line_items", "quotes")
BODY_MAX = 1 << 20


class Store:
    def __init__(self, objects: dict[str, dict[str, Any]], token: str) -> None:
        self.objects = {kind: dict(objects.get(kind, {})) for kind in TYPES}
        self.token = token
        self.lock = threading.Lock()
        self.outage_status = 0
        self.outage_left = 0
        self.outage_path = ""  # "": every API request
        self.requests = 0


def _answer(stored: dict[str, Any], properties: list[str] | None,
            associations: list[str]) -> dict[str, Any]:
    names = set(properties or []) | set(DEFAULT_PROPERTIES)
    props = stored["properties"]
    if isinstance(props, dict):  # a test may store a misshapen object: served as it is
        props = {k: v for k, v in props.items() if k in names}
    answer = {"id": stored["id"], "properties": props, "createdAt": stored["createdAt"],
              "updatedAt": stored["updatedAt"], "archived": False}
    linked = stored.get("associations", {})
    chosen = {kind: {"results": linked[kind]} for kind in associations if linked.get(kind)}
    if chosen:
        answer["associations"] = chosen
    return answer


def _listed(query: dict[str, list[str]], name: str) -> list[str]:
    """HubSpot takes `a,b` or `name=a&name=b`."""
    return [part for value in query.get(name, []) for part in value.split(",") if part]


class Handler(BaseHTTPRequestHandler):
    server_version = "hubspot-fixture/1"
    store: Store

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, category: str) -> None:
        self._send(status, {"status": "error", "message": message, "category": category,
                            "correlationId": "00000000-0000-4000-8000-000000000000"})

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if length > BODY_MAX:
            raise ValueError("body too large")
        return json.loads(self.rfile.read(length) or b"null")

    def _api_refused(self) -> bool:
        """Counts the request; answers it (True) during an outage or without the token."""
        store = self.store
        path = urlsplit(self.path).path
        with store.lock:
            store.requests += 1
            if store.outage_left > 0 and store.outage_path in ("", path):
                store.outage_left -= 1
                status = store.outage_status
            else:
                status = 0
        if status:
            self._error(status, "The fixture server is in a planned outage", "INTERNAL_ERROR")
            return True
        if self.headers.get("Authorization") != f"Bearer {store.token}":
            self._error(401, "Authentication credentials not found.",
                        "INVALID_AUTHENTICATION")
            return True
        return False

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/__fixture/requests":
            self._send(200, {"requests": self.store.requests})
            return
        parts = url.path.strip("/").split("/")
        if len(parts) != 5 or parts[:3] != ["crm", "v3", "objects"] or parts[3] not in TYPES:
            self._error(404, f"no route {url.path}", "OBJECT_NOT_FOUND")
            return
        if self._api_refused():
            return
        query = parse_qs(url.query)
        with self.store.lock:
            stored = self.store.objects[parts[3]].get(parts[4])
        if stored is None:
            self._error(404, "Object not found.  objectId are usually numeric.",
                        "OBJECT_NOT_FOUND")
            return
        self._send(200, _answer(stored, _listed(query, "properties"),
                                _listed(query, "associations")))

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/__fixture/outage":
            body = self._body()
            with self.store.lock:
                self.store.outage_status = int(body["status"])
                self.store.outage_left = int(body["count"])
                self.store.outage_path = str(body.get("path", ""))
            self._send(200, {"ok": True})
            return
        parts = url.path.strip("/").split("/")
        if (len(parts) != 6 or parts[:3] != ["crm", "v3", "objects"] or parts[3] not in TYPES
                or parts[4:] != ["batch", "read"]):
            self._error(404, f"no route {url.path}", "OBJECT_NOT_FOUND")
            return
        if self._api_refused():
            return
        body = self._body()
        with self.store.lock:
            found = [self.store.objects[parts[3]].get(str(i.get("id")))
                     for i in body.get("inputs", [])]
        results = [_answer(s, body.get("properties"), []) for s in found if s is not None]
        self._send(200, {"status": "COMPLETE", "results": results,
                         "startedAt": "2026-01-01T00:00:00.000Z",
                         "completedAt": "2026-01-01T00:00:00.100Z"})

    def do_PUT(self) -> None:
        parts = urlsplit(self.path).path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "__fixture" or parts[1] not in TYPES:
            self._error(404, "no such fixture route", "OBJECT_NOT_FOUND")
            return
        with self.store.lock:
            self.store.objects[parts[1]][parts[2]] = self._body()
        self._send(200, {"ok": True})


def main(argv: list[str]) -> None:
    port = int(argv[0])
    objects_file = argv[1]
    token = argv[2]
    with open(objects_file, encoding="utf-8") as file:
        objects = json.load(file)
    Handler.store = Store(objects, token)
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
