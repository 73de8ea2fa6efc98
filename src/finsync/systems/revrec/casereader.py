"""Typed access to a parsed revenue case file, every problem named by its field path.

Rules:
- A path reads like the file: `events[2].facts.added_goods_distinct`.
- A missing required field is `<path>: required`; a field of the wrong type says what it
  must be; a field the format does not know is refused (a typo must not pass silently).
- Money and percentages are decimal strings (JSON numbers are binary floats); quantities are
  integers; dates are ISO `YYYY-MM-DD`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import TypeVar

from finsync.domain.errors import DomainError
from finsync.domain.money import Money
from finsync.systems.revrec.errors import RevenueError

T = TypeVar("T")


class CaseFileError(RevenueError):
    """A revenue case file that cannot be read as given; `path` names the field."""

    code = "case_file_error"

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path or '(case)'}: {problem}")
        self.path, self.problem = path, problem


def built(path: str, factory: Callable[[], T]) -> T:
    """Run a domain constructor; a rule it refuses becomes an error of `path`."""
    try:
        return factory()
    except CaseFileError:
        raise
    except DomainError as exc:
        raise CaseFileError(path, str(exc)) from exc


class Node:
    """One value of the file and its path."""

    __slots__ = ("path", "value")

    def __init__(self, value: object, path: str = "") -> None:
        self.value, self.path = value, path

    def _key_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def _object(self) -> dict[str, object]:
        if not isinstance(self.value, dict):
            raise CaseFileError(self.path, "must be an object")
        return self.value

    def only(self, *keys: str) -> Node:
        unknown = sorted(set(self._object()) - set(keys))
        if unknown:
            raise CaseFileError(self._key_path(unknown[0]), "unknown field")
        return self

    def has(self, key: str) -> bool:
        return self._object().get(key) is not None

    def field(self, key: str) -> Node:
        value = self._object().get(key)
        if value is None:
            raise CaseFileError(self._key_path(key), "required")
        return Node(value, self._key_path(key))

    def opt(self, key: str) -> Node | None:
        return self.field(key) if self.has(key) else None

    def fail(self, problem: str) -> CaseFileError:
        return CaseFileError(self.path, problem)

    def text(self) -> str:
        if not isinstance(self.value, str) or not self.value:
            raise self.fail("must be a non-empty string")
        return self.value

    def choice(self, allowed: Iterable[str]) -> str:
        options = list(allowed)
        value = self.text()
        if value not in options:
            raise self.fail(f"must be one of {', '.join(options)}, not {value!r}")
        return value

    def integer(self, minimum: int = 0) -> int:
        if not isinstance(self.value, int) or isinstance(self.value, bool):
            raise self.fail("must be an integer")
        if self.value < minimum:
            raise self.fail(f"must be at least {minimum}")
        return self.value

    def flag(self) -> bool:
        if not isinstance(self.value, bool):
            raise self.fail("must be true or false")
        return self.value

    def decimal(self) -> Decimal:
        if not isinstance(self.value, str):
            raise self.fail(f"must be a decimal string such as \"120.00\", not {self.value!r}")
        try:
            amount = Decimal(self.value)
        except InvalidOperation:
            raise self.fail(f"not a decimal: {self.value!r}") from None
        if not amount.is_finite():
            raise self.fail("must be finite")
        return amount

    def money(self, currency: str) -> Money:
        amount = self.decimal()
        return built(self.path, lambda: Money(amount, currency))

    def day(self) -> date:
        text = self.text()
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise self.fail(f"not an ISO date (YYYY-MM-DD): {text!r}") from None

    def items(self) -> list[Node]:
        if not isinstance(self.value, list):
            raise self.fail("must be a list")
        return [Node(v, f"{self.path}[{i}]") for i, v in enumerate(self.value)]

    def strings(self) -> tuple[str, ...]:
        return tuple(item.text() for item in self.items())


def opt_items(node: Node, key: str) -> list[Node]:
    child = node.opt(key)
    return [] if child is None else child.items()


def opt_strings(node: Node, key: str) -> tuple[str, ...]:
    child = node.opt(key)
    return () if child is None else child.strings()
