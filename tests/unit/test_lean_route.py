"""A lean route runs what it was declared with, in order, as FastAPI would, and a route it
could not run the same way is refused when the app is built."""

from __future__ import annotations

from typing import Annotated

import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from finsync.api.lean_route import LeanRoute


async def app_wide(request: Request) -> None:
    request.app.state.calls.append(f"app-wide {request.method}")
    if request.headers.get("x-refuse"):
        raise PermissionError("refused before the route's own dependency")


async def body_of(name: str, request: Request) -> bytes:
    request.app.state.calls.append(f"body of {name}")
    return await request.body()


def sync_dependency() -> int:
    return 1


def _app(calls: list[str]) -> FastAPI:
    def endpoint(name: str, request: Request,
                 body: Annotated[bytes, Depends(body_of)]) -> JSONResponse:
        calls.append(f"endpoint {name}")
        return JSONResponse({"name": name, "body": body.decode(),
                             "path": request.url.path}, status_code=202)

    app = FastAPI(dependencies=[Depends(app_wide)])
    app.state.calls = calls

    async def refused(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=403)

    app.add_exception_handler(PermissionError, refused)
    app.router.add_api_route("/things/{name}", endpoint, methods=["POST"], status_code=202,
                             route_class_override=LeanRoute)
    return app


def test_a_lean_route_runs_its_dependencies_in_order_then_the_endpoint() -> None:
    calls: list[str] = []
    with TestClient(_app(calls)) as client:
        answer = client.post("/things/a%20b", content=b"hello")
    assert answer.status_code == 202
    assert answer.json() == {"name": "a b", "body": "hello", "path": "/things/a b"}
    assert calls == ["app-wide POST", "body of a b", "endpoint a b"]


def test_a_refusing_dependency_stops_the_request_before_the_rest() -> None:
    calls: list[str] = []
    with TestClient(_app(calls)) as client:
        answer = client.post("/things/x", content=b"hello", headers={"x-refuse": "1"})
    assert answer.status_code == 403
    assert calls == ["app-wide POST"]  # no body read, no endpoint


def test_a_route_with_what_a_lean_route_cannot_run_is_refused_when_built() -> None:
    def with_query(limit: int) -> JSONResponse:
        return JSONResponse({})

    async def awaited(name: str) -> JSONResponse:
        return JSONResponse({})

    def with_sync_dependency(n: Annotated[int, Depends(sync_dependency)]) -> JSONResponse:
        return JSONResponse({})

    def typed_path(number: int) -> JSONResponse:
        return JSONResponse({})

    for path, endpoint, what in [("/q", with_query, "query"),
                                 ("/a/{name}", awaited, "plain def"),
                                 ("/d", with_sync_dependency, "coroutine function"),
                                 ("/n/{number}", typed_path, "path parameter")]:
        with pytest.raises(TypeError, match=what):
            FastAPI().router.add_api_route(path, endpoint, methods=["POST"],
                                           route_class_override=LeanRoute)


def test_an_overridden_dependency_fails_the_request_instead_of_being_skipped() -> None:
    calls: list[str] = []
    app = _app(calls)

    async def let_everyone_in() -> None:
        calls.append("override")

    app.dependency_overrides[app_wide] = let_everyone_in
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.post("/things/x", content=b"hello")
    assert answer.status_code == 500
    assert calls == []
