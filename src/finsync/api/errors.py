"""Typed errors to HTTP responses: one table, walked along the error's MRO.

Only this module knows HTTP status codes. Every error body is
`{"error": {"code": <machine-readable>, "message": <for a person>}}`; an error that says when
to come back (a rate limit, a transient failure) adds `Retry-After` in whole seconds.
"""

from __future__ import annotations

import math

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from finsync.auth.local import ForbiddenError, NotAuthenticatedError
from finsync.domain.errors import (
    DomainError,
    FinsyncError,
    MappingError,
    SignatureError,
    TransientError,
)
from finsync.hub.intake import RateLimitedError

STATUS_BY_ERROR: dict[type[BaseException], int] = {
    NotAuthenticatedError: 401,
    ForbiddenError: 403,
    SignatureError: 400,
    MappingError: 422,
    DomainError: 422,
    TransientError: 503,
    FinsyncError: 500,
}

# A few errors deserve a more specific status than their class's. The database being
# unavailable is known by its code: the entry points do not import storage.
STATUS_BY_CODE = {"invalid_json": 400, "unknown_source": 404, "body_too_large": 413,
                  "rate_limited": 429, "storage_unavailable": 503,
                  # An intake node's replicated stream gave no acknowledgement (no quorum).
                  "transport_unavailable": 503, "unknown_status": 400,
                  "unknown_exception_class": 400, "ownership_violation": 403,
                  "unknown_exception": 404, "not_found": 404,
                  # The console's reports: what is not there, and a report that belongs to
                  # an external system (ask that system).
                  "unknown_entity": 404, "unknown_revenue_contract": 404,
                  "unknown_period": 404, "unknown_request": 404, "system_external": 409,
                  # The exception queue and its approvals (the console's exceptions page).
                  "invalid_filter": 400, "same_person": 403, "action_not_applicable": 409,
                  "request_not_pending": 409, "approval_expired": 409, "already_posted": 409}

# Errors that ask the client to come back without saying when: the Retry-After they get.
RETRY_AFTER_S_BY_CODE = {"transport_unavailable": 1.0}

# The framework's own refusals (no such route, a method not allowed, a malformed query
# parameter), coded like ours: a client never gets an uncoded error.
CODE_BY_HTTP_STATUS = {404: "not_found", 405: "method_not_allowed"}


def status_for(exc: FinsyncError) -> int:
    if exc.code in STATUS_BY_CODE:
        return STATUS_BY_CODE[exc.code]
    for klass in type(exc).__mro__:
        if klass in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[klass]
    return 500


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    # A message may quote what the sender sent: a lone surrogate there cannot be encoded as
    # UTF-8, so it is written as its escape.
    printable = message.encode("utf-8", "backslashreplace").decode("utf-8")
    return {"error": {"code": code, "message": printable}}


def headers_for(exc: FinsyncError) -> dict[str, str]:
    if isinstance(exc, NotAuthenticatedError):
        return {"WWW-Authenticate": "Bearer"}
    retry_after_s: float | None = None
    if isinstance(exc, RateLimitedError | TransientError):
        retry_after_s = exc.retry_after_s
    if retry_after_s is None:
        retry_after_s = RETRY_AFTER_S_BY_CODE.get(exc.code)
    if retry_after_s is None:
        return {}
    return {"Retry-After": str(max(1, math.ceil(retry_after_s)))}


async def finsync_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FinsyncError)
    return JSONResponse(error_body(exc.code, str(exc)), status_code=status_for(exc),
                        headers=headers_for(exc))


async def http_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = CODE_BY_HTTP_STATUS.get(exc.status_code, "http_error")
    return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code,
                        headers=exc.headers)


async def validation_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                         for e in exc.errors())
    return JSONResponse(error_body("invalid_request", problems), status_code=422)
