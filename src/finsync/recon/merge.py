"""Merging two streams ordered by the same key, in one pass and without holding either.

Rules:
- Both streams are ordered by their key, strictly ascending (each key once), in Python's
  string order: the ports promise it (code-point order). A stream out of order is a
  broken promise, not a break, and raises `StreamOrderError` rather than pairing wrongly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from finsync.domain.errors import FinsyncError

L = TypeVar("L")
R = TypeVar("R")


class StreamOrderError(FinsyncError):
    code = "stream_order_error"


def merge(left: Iterable[L], right: Iterable[R], left_key: Callable[[L], str],
          right_key: Callable[[R], str]) -> Iterator[tuple[str, L | None, R | None]]:
    """(key, left row or None, right row or None) for every key of either stream, in order."""
    lefts, rights = _ordered(left, left_key), _ordered(right, right_key)
    a, b = next(lefts, None), next(rights, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a[0] < b[0]):
            assert a is not None
            yield a[0], a[1], None
            a = next(lefts, None)
        elif a is None or b[0] < a[0]:
            yield b[0], None, b[1]
            b = next(rights, None)
        else:
            yield a[0], a[1], b[1]
            a, b = next(lefts, None), next(rights, None)


def _ordered(rows: Iterable[L], key: Callable[[L], str]) -> Iterator[tuple[str, L]]:
    previous: str | None = None
    for row in rows:
        k = key(row)
        if previous is not None and not previous < k:
            raise StreamOrderError(f"a stream is not in ascending key order: {previous!r} "
                                   f"then {k!r}")
        previous = k
        yield k, row
