"""Merging two streams ordered by the same key, in one pass and without holding either.

Rules:
- Both streams are ordered by their key, strictly ascending (each key once), in Python's
  string order: the ports promise it (code-point order). A stream out of order is a
  broken promise, not a break, and raises `StreamOrderError` rather than pairing wrongly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from finsync.domain.errors import FinsyncError

L = TypeVar("L")
R = TypeVar("R")


class StreamOrderError(FinsyncError):
    code = "stream_order_error"


def merge(left: Iterable[L], right: Iterable[R], left_key: Callable[[L], str],
          right_key: Callable[[R], str]) -> Iterator[tuple[str, L | None, R | None]]:
    """(key, left row or None, right row or None) for every key of either stream, in order.

    Written as one loop (no generator per stream): it runs once per document of a book."""
    lefts, rights = iter(left), iter(right)
    a, ka = _advance(lefts, left_key, None)
    b, kb = _advance(rights, right_key, None)
    while ka is not None or kb is not None:
        if kb is None or (ka is not None and ka < kb):
            assert ka is not None
            yield ka, a, None
            a, ka = _advance(lefts, left_key, ka)
        elif ka is None or kb < ka:
            yield kb, None, b
            b, kb = _advance(rights, right_key, kb)
        else:
            yield ka, a, b
            a, ka = _advance(lefts, left_key, ka)
            b, kb = _advance(rights, right_key, kb)


def _advance(rows: Iterator[Any], key: Callable[[Any], str],
             previous: str | None) -> tuple[Any, str | None]:
    """The next row and its key, checked to rise (typed loosely: mypy would bind the
    caller's `L | None` target to the row type)."""
    row = next(rows, None)
    if row is None:
        return None, None
    k = key(row)
    if previous is not None and not previous < k:
        raise StreamOrderError(f"a stream is not in ascending key order: {previous!r} "
                               f"then {k!r}")
    return row, k
