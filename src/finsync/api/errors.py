"""Typed errors to HTTP responses: one table, walked along the error's MRO.

Only this module knows HTTP status codes. Every error body is
`{"error": {"code": <machine-readable>, "message": <for a person>}}`.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from finsync.domain.errors import (
    DomainError,
    FinsyncError,
    MappingError,
    SignatureError,
    TransientError,
)

STATUS_BY_ERROR: dict[type[BaseException], int] = {
    SignatureError: 400,
    MappingError: 422,
    DomainError: 422,
    TransientError: 503,
    FinsyncError: 500,
}

# A few errors deserve a more specific status than their class's. The database being
# unavailable is known by its code: the entry points do not import storage.
STATUS_BY_CODE = {"invalid_json": 400, "unknown_source": 404, "body_too_large": 413,
                  "storage_unavailable": 503}


def status_for(exc: FinsyncError) -> int:
    if exc.code in STATUS_BY_CODE:
        return STATUS_BY_CODE[exc.code]
    for klass in type(exc).__mro__:
        if klass in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[klass]
    return 500


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


async def finsync_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FinsyncError)
    return JSONResponse(error_body(exc.code, str(exc)), status_code=status_for(exc))
