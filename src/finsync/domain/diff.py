"""Field-level differences between two JSON documents: what a changed body changed.

Rules:
- Pure: two JSON values in (the codec's encoding of two events' payloads), changes out.
- A change names its path as the codec names fields in its errors: keys joined by dots, list
  items by index (`invoice.lines[0].amount`), and shows both sides as JSON (strings quoted);
  a field one side lacks is `(absent)`.
- Objects compare key by key (in key order), lists item by item; anything else compares
  whole, so `"60000.00"` and `"60000.0"` differ: the encoding is canonical.
- `describe` lists at most `changes_max` changes and counts the rest; each side is shown in
  at most `value_chars_max` characters. Nothing is dropped without saying so.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

from finsync.domain.codec import JsonValue

ABSENT = "(absent)"


@dataclass(frozen=True, slots=True)
class Change:
    path: str
    before: str  # the stored side, as JSON, or ABSENT
    after: str  # the received side, as JSON, or ABSENT

    def __str__(self) -> str:
        return f"{self.path}: {self.before} -> {self.after}"


def changes(before: JsonValue, after: JsonValue) -> tuple[Change, ...]:
    """Every leaf where `after` differs from `before`, in path order."""
    return tuple(_walk(before, after, ""))


def describe(found: tuple[Change, ...], *, changes_max: int = 50,
             value_chars_max: int = 200) -> str:
    """One change a line, bounded; `(no field changed)` for none."""
    if not found:
        return "(no field changed)"
    lines = [f"{c.path}: {_cut(c.before, value_chars_max)} -> "
             f"{_cut(c.after, value_chars_max)}" for c in found[:changes_max]]
    if len(found) > changes_max:
        lines.append(f"… and {len(found) - changes_max} more change(s) "
                     f"(at most {changes_max} are listed)")
    return "\n".join(lines)


def _walk(before: JsonValue | None, after: JsonValue | None, path: str) -> Iterator[Change]:
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(before.keys() | after.keys()):
            inner = f"{path}.{key}" if path else key
            if key not in before:
                yield Change(inner, ABSENT, _json(after[key]))
            elif key not in after:
                yield Change(inner, _json(before[key]), ABSENT)
            else:
                yield from _walk(before[key], after[key], inner)
        return
    if isinstance(before, list) and isinstance(after, list):
        for index in range(max(len(before), len(after))):
            inner = f"{path}[{index}]"
            if index >= len(before):
                yield Change(inner, ABSENT, _json(after[index]))
            elif index >= len(after):
                yield Change(inner, _json(before[index]), ABSENT)
            else:
                yield from _walk(before[index], after[index], inner)
        return
    if before != after or type(before) is not type(after):
        yield Change(path or "(document)", _json(before), _json(after))


def _json(value: JsonValue | None) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _cut(text: str, chars_max: int) -> str:
    return text if len(text) <= chars_max else text[:chars_max - 1] + "…"
