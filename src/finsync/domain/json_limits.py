"""JSON nesting depth and element count, checked on the text before it is parsed.

Rules:
- The check runs before `json.loads`: a hostile body can exhaust neither the parser's stack
  (100,000 nested arrays is a `RecursionError` inside `json`) nor memory (millions of tiny
  elements).
- One iterative pass, no recursion: string contents and their escapes are skipped (a bracket
  or a comma inside a string is text, not structure), then brackets are followed one by one,
  stopping as soon as a limit is passed. A text with no more opening brackets than the
  depth limit and fewer characters than the element limit cannot pass either, and is not
  walked.
- Elements are the values of the document: the root, every container, every array item and
  every object member's value (`{"a": [1, 2]}` has 4). Counted as 1 + commas + non-empty
  containers, which is exact for valid JSON.
- It checks shape, not validity: text that passes may still be invalid JSON, and the parser
  says so. Bytes are decoded as `json.loads` decodes them (UTF-8, -16 or -32, detected),
  so a UTF-16 body cannot hide its brackets from the check.
- A refusal is a `MappingError` with code `json_too_deep` or `json_too_large` that names the
  limit and its value.
"""

from __future__ import annotations

import json
import re

from finsync.domain.errors import MappingError
from finsync.domain.limits import InputLimits

# A string from its opening quote to its closing one (or the end of the text), escapes
# included: `\"` does not close it. Unrolled loop: no backtracking on long strings.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")
_EMPTY = re.compile(r"\[[ \t\r\n]*\]|\{[ \t\r\n]*\}")
_OPENING = frozenset("[{")

DEFAULT_LIMITS = InputLimits()


def decode(body: bytes) -> str:
    """The text of a JSON body, decoded as `json.loads` would; raises `UnicodeDecodeError`."""
    return body.decode(json.detect_encoding(body), "surrogatepass")


def check(text: str, limits: InputLimits = DEFAULT_LIMITS) -> None:
    """Refuse `text` if it nests deeper than `limits.json_depth_max` or holds more than
    `limits.json_items_max` elements; the text itself is not parsed."""
    if not _within_at_sight(text, limits):
        walk(text, limits)


def walk(text: str, limits: InputLimits) -> None:
    """`check`, by following the text's structure (strings skipped) bracket by bracket."""
    shape = structure(text)
    opened = _check_depth(shape, limits)
    elements = 1 + shape.count(",") + opened - _EMPTY.subn("", shape)[1]
    if elements > limits.json_items_max:
        raise _too_large(f"JSON of {elements:,} elements", limits)


def _within_at_sight(text: str, limits: InputLimits) -> bool:
    """Whether `text` is within both limits, told from counts alone (most stored events and
    bodies): it cannot nest deeper than it has opening brackets, strings included, nor hold
    more elements than one more than its characters (each element after the first takes a
    comma or an opening bracket, and a whole string counts as one character)."""
    if len(text) >= limits.json_items_max:
        return False
    return text.count("[") + text.count("{") <= limits.json_depth_max


def structure(text: str) -> str:
    """`text` with each string, quotes included, replaced by one scalar (`0`): its value
    still counts as an element. Text without a backslash has no escape, so a string runs
    from a quote to the next one (or to the end): a split on quotes, several times faster
    than the pattern that follows escapes."""
    if "\\" in text:
        return _STRING.sub("0", text)
    parts = text.split('"')
    shape = "0".join(parts[0::2])
    return shape + "0" if len(parts) % 2 == 0 else shape  # an unclosed string at the end


def check_body(body: bytes, limits: InputLimits = DEFAULT_LIMITS) -> None:
    """`check` on a body's bytes. A body that is not text in any JSON encoding passes: it
    is not JSON, and the parser refuses it with its own error."""
    try:
        text = decode(body)
    except UnicodeDecodeError:
        return
    check(text, limits)


def _check_depth(shape: str, limits: InputLimits) -> int:
    """Follow the brackets of `shape` (strings removed); returns how many containers it
    opens. Stops at the first level past the depth limit, or once more containers are
    opened than elements are allowed (each container is an element), so the loop is
    bounded by the limits, not by the size of the text."""
    depth = 0
    opened = 0
    for bracket in _BRACKET.finditer(shape):
        if bracket[0] not in _OPENING:
            depth = max(depth - 1, 0)  # an unbalanced closer is the parser's error to report
            continue
        depth += 1
        opened += 1
        if depth > limits.json_depth_max:
            raise MappingError(
                f"JSON nested deeper than the limit of {limits.json_depth_max:,} levels "
                "(json_depth_max)", code="json_too_deep")
        if opened > limits.json_items_max:
            raise _too_large(f"JSON of more than {limits.json_items_max:,} elements", limits)
    return opened


def _too_large(what: str, limits: InputLimits) -> MappingError:
    return MappingError(f"{what} exceeds the limit of {limits.json_items_max:,} elements "
                        "(json_items_max)", code="json_too_large")
