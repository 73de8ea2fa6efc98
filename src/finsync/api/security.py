"""Who may call which route: bearer tokens, each route's scope, deny by default.

Rules:
- Every route of the app declares how it is authenticated, in its OpenAPI operation (so the
  published document and the check are one declaration): `needs(scope)` (an API token
  holding `scope`, where `{name}` stands for the path parameter, as in
  `events:write:{source}`), `ANY_TOKEN` (any valid token), `PUBLIC` (`/healthz` only) or
  `SIGNED` (webhooks: the request's signature is its credential, checked by the handler).
- `authenticated`, a dependency of the whole app, runs before any other dependency or
  handler: a route that declares nothing is refused to everyone (403), so a new route
  without a scope fails closed, and the scope-matrix test fails.
- No or a malformed `Authorization` header, or a token that is unknown, pending, revoked or
  expired: 401 `not_authenticated` (with `WWW-Authenticate: Bearer`). A valid token without
  the route's scope: 403 `forbidden`. The principal is on `request.state.principal`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute

from finsync.auth.local import ForbiddenError, NotAuthenticatedError
from finsync.auth.principal import Principal

SCHEME = "bearer"
PUBLIC: dict[str, Any] = {"security": []}
SIGNED: dict[str, Any] = {"security": [], "x-finsync-authentication": "signature"}
ANY_TOKEN: dict[str, Any] = {"security": [{SCHEME: []}]}
SECURITY_SCHEMES = {SCHEME: {
    "type": "http", "scheme": "bearer", "bearerFormat": "finsync API token (fsk_…)",
    "description": "`finsync tokens create`; the operation's list names the scope it needs "
                   "(`{source}` is the path's source)."}}
_REFUSALS = {"401": {"description": "not_authenticated: no valid bearer token"},
             "403": {"description": "forbidden: the token lacks the scope"}}

Authenticate = Callable[[str], Principal]


def needs(scope: str) -> dict[str, Any]:
    """The `openapi_extra` of a route that needs a token holding `scope`."""
    return {"security": [{SCHEME: [scope]}], "responses": _REFUSALS}


def declared(route: object) -> list[str] | None:
    """The scopes a route needs (empty: any valid token); None for a public or signed
    route. `ForbiddenError` for a route that declares nothing."""
    extra = route.openapi_extra if isinstance(route, APIRoute) else None
    if not extra or "security" not in extra:
        path = getattr(route, "path", "?")
        raise ForbiddenError(f"{path} declares no scope: refused to everyone")
    requirements = extra["security"]
    if not requirements:
        return None
    return [scope for requirement in requirements for scope in requirement.get(SCHEME, ())]


def authenticated(request: Request) -> Principal | None:
    """The app-wide dependency: the caller's principal, or None on a public route."""
    scopes = declared(request.scope.get("route"))
    if scopes is None:
        return None
    authenticate: Authenticate = request.app.state.authenticate
    principal = authenticate(_bearer(request.headers.get("authorization")))
    for template in scopes:
        scope = template.format_map(request.path_params)
        if not principal.can(scope):
            raise ForbiddenError(f"{principal.id}'s token lacks the scope {scope!r}")
    request.state.principal = principal
    return principal


def _bearer(header: str | None) -> str:
    if not header:
        raise NotAuthenticatedError("this route needs an API token: Authorization: Bearer "
                                    "<token>")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticatedError("the Authorization header must be Bearer <token>")
    return token.strip()


def document(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` (the app's OpenAPI document) with the bearer scheme declared."""
    schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
    return schema
