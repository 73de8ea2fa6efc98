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
- The console's browser sends no bearer token: its session cookie (`SESSION_COOKIE`, opened
  by `POST /v1/session` with a token, `auth.sessions`) stands for the token's principal
  instead, with the same scopes. A request with a cookie that changes anything (any method
  but GET, HEAD, OPTIONS) must also carry the session's CSRF token in `X-CSRF-Token`, else
  403 `csrf_failed`: the cookie is sent by the browser on its own, the header only by the
  console's script. An `Authorization` header always wins over a cookie.
- A route declared `rechecked` (intake: its group commit looks the batch's tokens up again
  before storing) takes its bearer token from `app.state.recent_tokens` when it is set
  (`recent_tokens`: verified within the last second, no I/O); the token's id is then on
  `request.state.token_id` for the recheck (None otherwise). Every other route looks the
  token up on each request.
- `authenticated` runs on the event loop; what needs the database (a look-up, a session)
  runs in the thread pool.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from finsync.api.recent_tokens import RecentTokens
from finsync.auth.local import ForbiddenError, NotAuthenticatedError
from finsync.auth.principal import Principal
from finsync.auth.sessions import Session

SCHEME = "bearer"
PUBLIC: dict[str, Any] = {"security": []}
SIGNED: dict[str, Any] = {"security": [], "x-finsync-authentication": "signature"}
ANY_TOKEN: dict[str, Any] = {"security": [{SCHEME: []}]}
# The console's log-in: the API token is in the body (exchanged for a session cookie).
LOGIN: dict[str, Any] = {"security": [], "x-finsync-authentication": "token-in-body"}
# The `openapi_extra` mark of a route whose handler looks its token up again (`rechecked`).
RECHECKED = "x-finsync-token-rechecked"
SESSION_COOKIE = "finsync_session"
CSRF_HEADER = "x-csrf-token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SECURITY_SCHEMES = {SCHEME: {
    "type": "http", "scheme": "bearer", "bearerFormat": "finsync API token (fsk_…)",
    "description": "`finsync tokens create`; the operation's list names the scope it needs "
                   "(`{source}` is the path's source)."}}
_REFUSALS = {"401": {"description": "not_authenticated: no valid bearer token"},
             "403": {"description": "forbidden: the token lacks the scope"}}

Authenticate = Callable[[str], Principal]
Sessions = Callable[[str], Session]


class CsrfError(ForbiddenError):
    """A cookie-authenticated request that changes something, without the session's CSRF
    token."""

    code = "csrf_failed"


def needs(scope: str) -> dict[str, Any]:
    """The `openapi_extra` of a route that needs a token holding `scope`."""
    return {"security": [{SCHEME: [scope]}], "responses": _REFUSALS}


def rechecked(scope: str) -> dict[str, Any]:
    """`needs(scope)` for a route whose handler looks its token up again before it stores
    (intake's group commit): its token may come from `RecentTokens`."""
    return {**needs(scope), RECHECKED: True}


def needs_session() -> dict[str, Any]:
    """The `openapi_extra` of a route about the caller's own console session (any valid
    credential; the handler needs the session itself)."""
    return {**ANY_TOKEN, "responses": _REFUSALS}


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


async def authenticated(request: Request) -> Principal | None:
    """The app-wide dependency: the caller's principal, or None on a public route."""
    route = request.scope.get("route")
    scopes = declared(route)
    if scopes is None:
        return None
    request.state.token_id = None
    principal = _recently_verified(request, route)
    if principal is None:
        principal = await run_in_threadpool(_caller, request, route)
    for template in scopes:
        scope = template.format_map(request.path_params)
        if not principal.can(scope):
            raise ForbiddenError(f"{principal.id}'s token lacks the scope {scope!r}")
    request.state.principal = principal
    return principal


def _recent_tokens(request: Request, route: object) -> RecentTokens | None:
    """The app's recently verified tokens, for a `rechecked` route with a bearer token."""
    extra = route.openapi_extra if isinstance(route, APIRoute) else None
    if not extra or not extra.get(RECHECKED) or not request.headers.get("authorization"):
        return None
    recent: RecentTokens | None = getattr(request.app.state, "recent_tokens", None)
    return recent


def _recently_verified(request: Request, route: object) -> Principal | None:
    """The bearer token's principal when a `rechecked` route may take it from a recent
    look-up and there is one (None: look it up)."""
    recent = _recent_tokens(request, route)
    found = None if recent is None else recent.recent(
        _bearer(request.headers.get("authorization")))
    if found is None:
        return None
    request.state.token_id = found.token_id
    return found.principal


def _caller(request: Request, route: object) -> Principal:
    """The bearer token's principal, else the console session's (CSRF-checked)."""
    header = request.headers.get("authorization")
    cookie = request.cookies.get(SESSION_COOKIE)
    sessions: Sessions | None = getattr(request.app.state, "sessions", None)
    if header or not cookie or sessions is None:
        recent = _recent_tokens(request, route)
        if recent is not None:
            found = recent.verify(_bearer(header))
            request.state.token_id = found.token_id
            return found.principal
        authenticate: Authenticate = request.app.state.authenticate
        return authenticate(_bearer(header))
    session = sessions(cookie)
    if request.method not in _SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), session.csrf.encode()):
            raise CsrfError(f"this action needs the session's CSRF token in {CSRF_HEADER}")
    request.state.session = session
    return session.principal


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
