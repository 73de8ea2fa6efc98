"""A route declared as FastAPI declares every route, served without FastAPI's per-request
dependency solving: for event intake, where that solving was the largest share of the
event loop's CPU per 202 (bench/serve.py).

Rules:
- The route is an `APIRoute`: its path, `openapi_extra` (its scope) and OpenAPI document
  are FastAPI's, and the app-wide dependencies (`security.authenticated`) are in its
  dependant as in every route's.
- The handler runs the dependant's dependencies in their declared order (the app's first),
  each awaited before the next, then the endpoint in the thread pool, with the arguments
  FastAPI would pass: path parameters as strings, the `Request`, each dependency's result
  by its name.
- Only what it can run the same way is taken: string path parameters, the request, and
  dependencies that are coroutine functions with nothing below them; the endpoint a plain
  `def` returning a `Response`. Anything else (a query or header parameter, a body model, a
  dependency added later) is refused when the app is built, never skipped.
- `app.dependency_overrides` would need FastAPI's solving: an override of one of its
  dependencies fails the request (500) rather than being skipped.
- Errors propagate as from any route: the app's exception handlers map them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool


class LeanRoute(APIRoute):
    """An `APIRoute` whose handler resolves its few dependencies directly."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = self.dependant
        _refuse_unless_lean(endpoint, self.path)
        steps = [(step.name, step) for step in endpoint.dependencies]

        async def handle(request: Request) -> Response:
            overrides = getattr(self.dependency_overrides_provider, "dependency_overrides",
                                None)
            results: dict[str, Any] = {}
            for name, step in steps:
                assert step.call is not None
                if overrides and step.call in overrides:
                    raise TypeError(f"{self.path} is a lean route: it cannot run the "
                                    f"override of {step.call.__name__}")
                result = await step.call(**_arguments(step, request, {}))
                if name is not None:
                    results[name] = result
            assert endpoint.call is not None
            response = await run_in_threadpool(endpoint.call,
                                               **_arguments(endpoint, request, results))
            if not isinstance(response, Response):
                raise TypeError(f"{self.path}'s endpoint returned no Response")
            return response
        return handle


def _arguments(dependant: Dependant, request: Request,
               results: Mapping[str, Any]) -> dict[str, Any]:
    arguments: dict[str, Any] = {field.name: request.path_params[field.name]
                                 for field in dependant.path_params}
    if dependant.request_param_name is not None:
        arguments[dependant.request_param_name] = request
    for step in dependant.dependencies:
        if step.name is not None:
            arguments[step.name] = results[step.name]
    return arguments


def _refuse_unless_lean(endpoint: Dependant, path: str) -> None:
    """`TypeError` unless the handler can run `endpoint` as FastAPI would."""
    def refuse(what: str) -> None:
        raise TypeError(f"{path}: a lean route takes no {what}")

    if endpoint.call is None or inspect.iscoroutinefunction(endpoint.call):
        refuse("endpoint but a plain def")
    for dependant in (endpoint, *endpoint.dependencies):
        if (dependant.query_params or dependant.header_params or dependant.cookie_params
                or dependant.body_params):
            refuse("query, header, cookie or body parameter")
        if any(field.field_info.annotation is not str for field in dependant.path_params):
            refuse("path parameter but a string")
        if (dependant.websocket_param_name or dependant.http_connection_param_name
                or dependant.response_param_name or dependant.background_tasks_param_name
                or dependant.security_scopes_param_name):
            refuse("special parameter but the Request")
    for step in endpoint.dependencies:
        if step.dependencies or not inspect.iscoroutinefunction(step.call):
            refuse("dependency but a coroutine function with nothing below it")
