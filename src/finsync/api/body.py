"""Reading a request body within a limit: counted as it streams in, and no further than the
limit (none of it when Content-Length already says it is too large)."""

from __future__ import annotations

from fastapi import Request

from finsync.hub.intake import BodyTooLargeError


async def read_within(request: Request, limit: int) -> bytes | BodyTooLargeError:
    """The body, or `BodyTooLargeError` once `limit` is passed (the rest is not read)."""
    declared = request.headers.get("content-length", "")
    plausible = declared.isascii() and declared.isdigit() and len(declared) < 19
    if plausible and int(declared) > limit:
        return BodyTooLargeError(limit, int(declared), declared=True)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return BodyTooLargeError(limit)
        chunks.append(chunk)
    return b"".join(chunks)
