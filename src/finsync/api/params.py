"""Path and query parameters the routes share, bounded to what the database holds: a value
outside is a 422 `invalid_request` with its code, never a driver error (an integer past
BIGINT, a NUL that PostgreSQL's text cannot hold)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from finsync.domain.limits import InputLimits

BIGINT_MAX = 2**63 - 1  # seq and ids are BIGINT columns
# No control character (C0 or DEL) in an id or a text parameter.
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
ID_MAX_CHARS = InputLimits().id_max_chars

ExceptionId = Annotated[int, Path(ge=1, le=BIGINT_MAX, description="The exception's id.")]
CorrelationId = Annotated[str, Path(min_length=1, max_length=ID_MAX_CHARS, pattern=PRINTABLE,
                                    description="A correlation id.")]
EntityId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$",
                               description="A legal entity's id.")]
