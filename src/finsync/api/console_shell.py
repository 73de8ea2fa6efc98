"""The console's shell: its page at `/`, its static files, and the log-in that exchanges an
API token for a session cookie (`auth.sessions`).

The page and its files hold no data and are public; every figure they show is fetched from
the authenticated JSON API under `/v1/...` with the session cookie. Charts are drawn by the
plotly.js bundled in the `plotly` package (pinned in the lock file), served from here: the
console never loads anything from another origin, which its Content-Security-Policy says.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import Engine

from finsync.api import security
from finsync.api.body import read_within
from finsync.auth.principal import Principal
from finsync.auth.sessions import close_session, open_session
from finsync.domain.errors import MappingError
from finsync.hub.intake import BodyTooLargeError

STATIC = Path(str(files("finsync.api") / "static"))
PLOTLY = Path(str(files("plotly") / "package_data" / "plotly.min.js"))
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
# Nothing from elsewhere, no inline script; plotly sets inline styles on what it draws.
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; "
                               "style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}
AssetPath = Annotated[str, PathParam(max_length=200, pattern=r"^[a-z0-9_/-]+\.(js|css|svg)$",
                                     description="A file of the console.")]


class Login(BaseModel):
    """The API token that the session will stand for."""

    token: str = Field(min_length=1, max_length=200)


LOGIN_MAX_BYTES = 4096


async def _login_body(request: Request) -> bytes | BodyTooLargeError:
    return await read_within(request, LOGIN_MAX_BYTES)


LoginBody = Annotated[bytes | BodyTooLargeError, Depends(_login_body)]
# The body is read by `_login_body`, not declared as a parameter: say in the OpenAPI what it is.
_LOGIN_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": Login.model_json_schema()}}}}


def _asset(path: Path) -> FileResponse:
    return FileResponse(path, media_type=_TYPES[path.suffix], headers=_HEADERS)


def _who(principal: Principal, csrf: str, expires_at: datetime,
         idle_s: float) -> dict[str, Any]:
    return {"principal": principal.id, "scopes": sorted(principal.scopes), "csrf_token": csrf,
            "expires_at": expires_at.isoformat(), "idle_timeout_s": int(idle_s)}


def register(app: FastAPI, engine: Engine, clock: Callable[[], datetime],
             idle_timeout: timedelta, lifetime: timedelta) -> None:
    """The shell's routes, on the hub's database (where the tokens and sessions are)."""

    @app.get("/", openapi_extra=security.PUBLIC, include_in_schema=False)
    def console() -> FileResponse:
        """The console's page (it logs in, then reads the JSON API)."""
        return _asset(STATIC / "index.html")

    @app.get("/console", openapi_extra=security.PUBLIC, include_in_schema=False)
    @app.get("/console/", openapi_extra=security.PUBLIC, include_in_schema=False)
    def console_folder() -> RedirectResponse:
        """The folder of the assets is where people type to find the console: it is at `/`
        (without this, the asset route refused the empty file name: 422)."""
        return RedirectResponse("/", status_code=308)

    @app.get("/console/vendor/plotly.min.js", openapi_extra=security.PUBLIC,
                include_in_schema=False)
    def plotly() -> FileResponse:
        return FileResponse(PLOTLY, media_type=_TYPES[".js"],
                            headers={**_HEADERS, "Cache-Control": "public, max-age=86400"})

    @app.get("/console/{asset:path}", openapi_extra=security.PUBLIC,
                include_in_schema=False)
    def asset(asset: AssetPath) -> Response:
        found = (STATIC / asset).resolve()
        if not found.is_file() or STATIC.resolve() not in found.parents:
            return JSONResponse({"error": {"code": "not_found", "message": "no such file"}},
                                status_code=404)
        return _asset(found)

    @app.post("/v1/session", openapi_extra={**security.LOGIN, **_LOGIN_BODY})
    def log_in(request: Request, body: LoginBody) -> JSONResponse:
        """Exchange an API token for a console session: an HttpOnly, SameSite=Strict cookie,
        and the CSRF token every action of the session must send in `X-CSRF-Token`. The
        route is public: its body is read no further than `LOGIN_MAX_BYTES` (413)."""
        if isinstance(body, BodyTooLargeError):
            raise body
        try:
            login = Login.model_validate_json(body)
        except ValidationError as exc:
            raise MappingError(f"a log-in is {{\"token\": \"fsk_…\"}}: {exc.errors()[0]['msg']}",
                               code="invalid_request") from None
        opened = open_session(engine, login.token.strip(), clock(),
                              idle_timeout=idle_timeout, lifetime=lifetime)
        session = opened.session
        answer = JSONResponse(_who(session.principal, session.csrf, session.expires_at,
                                   session.idle_timeout.total_seconds()))
        answer.set_cookie(security.SESSION_COOKIE, opened.secret, httponly=True,
                          samesite="strict", secure=request.url.scheme == "https", path="/")
        return answer

    @app.get("/v1/session", openapi_extra=security.needs_session())
    def whoami(request: Request) -> dict[str, Any]:
        """The caller's principal and its scopes now; for a console session, its CSRF token
        and expiry too (null for a bearer token)."""
        session = getattr(request.state, "session", None)
        if session is None:
            principal: Principal = request.state.principal
            return {"principal": principal.id, "scopes": sorted(principal.scopes),
                    "csrf_token": None, "expires_at": None, "idle_timeout_s": None}
        return _who(session.principal, session.csrf, session.expires_at,
                    session.idle_timeout.total_seconds())

    @app.delete("/v1/session", openapi_extra=security.needs_session())
    def log_out(request: Request) -> JSONResponse:
        """End the session now (its cookie is cleared too)."""
        secret = request.cookies.get(security.SESSION_COOKIE)
        if secret:
            close_session(engine, secret, clock())
        answer = JSONResponse({"logged_out": True})
        answer.delete_cookie(security.SESSION_COOKIE, path="/", httponly=True,
                             samesite="strict")
        return answer

