"""What an intake node (`serve --role intake`, `create_app(publisher=…)`) serves: event
intake and the API, no console. The console's paths are unknown there: 404 `not_found` with
the API's error body, as any unknown path, never a console route's own answer (a misnamed
asset's 422 `invalid_request`, a page, a log-in)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from finsync.api.app import Receipt, create_app
from finsync.hub.group_commit import Checked
from tests.hubkit import make_hub


class Unreached:
    """A publisher no request of these tests reaches."""

    def __call__(self, batch: Sequence[Checked]) -> Sequence[Receipt]:
        raise AssertionError("nothing is published by these tests")

    def close(self) -> None:
        pass


CONSOLE_PATHS = [("GET", "/"), ("GET", "/console"), ("GET", "/console/"),
                 ("GET", "/console/console.js"), ("GET", "/console/vendor/plotly.min.js"),
                 ("POST", "/v1/session"), ("GET", "/v1/session"), ("GET", "/nowhere")]


@pytest.mark.parametrize(("method", "path"), CONSOLE_PATHS)
def test_an_intake_node_answers_404_for_the_console(engine: Engine, tmp_path: Path,
                                                   method: str, path: str) -> None:
    app = create_app(make_hub(engine, tmp_path), publisher=Unreached())
    with TestClient(app) as client:
        response = client.request(method, path, json={"token": "x"} if method == "POST"
                                  else None)
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "not_found"


def test_a_node_that_serves_the_console_still_does(engine: Engine, tmp_path: Path) -> None:
    with TestClient(create_app(make_hub(engine, tmp_path))) as client:
        assert client.get("/").status_code == 200
        assert client.get("/console/console.js").status_code == 200
        for folder in ("/console", "/console/"):  # where people look for it
            moved = client.get(folder, follow_redirects=False)
            assert (moved.status_code, moved.headers["location"]) == (308, "/")
