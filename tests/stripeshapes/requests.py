"""Requests checked against the parameters Stripe publishes for each API operation.

`tests/fixtures/stripe/requests.json` holds, per operation the subscription platform calls
(`"POST /v1/subscriptions/{subscription_exposed_id}"`, …), its parameters as a small JSON
schema written from Stripe's generated SDK types (`make_requests.py` beside it says how).
`check(method, path, params)` decodes a form-encoded request the way Stripe's API does
(`items[0][price]`, `metadata[key]`) and raises `RequestShapeError` naming every parameter
that the operation does not have, a value outside its enum (a `proration_behavior` Stripe
does not know), a value of the wrong type (an integer that is not digits, a boolean that is
not `true`/`false`) or a list whose indexes skip.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

REQUESTS = Path(__file__).resolve().parent.parent / "fixtures" / "stripe" / "requests.json"
SPEC: dict[str, Any] = json.loads(REQUESTS.read_text())
OPERATIONS: dict[str, dict[str, Any]] = SPEC["operations"]

Tree = dict[str, Any]


class RequestShapeError(AssertionError):
    pass


def operation(method: str, path: str) -> str:
    """The published operation a concrete request is (its path's ids as templates)."""
    for name in OPERATIONS:
        verb, template = name.split(" ", 1)
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        if verb == method and re.fullmatch(pattern, path):
            return name
    raise RequestShapeError(f"{method} {path} is not an operation in {REQUESTS.name}")


def decode(params: Sequence[tuple[str, str]]) -> Tree:
    """Stripe's form encoding as a tree of dicts (list indexes stay keys: "0", "1")."""
    tree: Tree = {}
    for key, value in params:
        names = [key.split("[", 1)[0], *re.findall(r"\[([^\]]*)\]", key)]
        node = tree
        for name in names[:-1]:
            node = node.setdefault(name, {})
            if not isinstance(node, dict):
                raise RequestShapeError(f"{key}: a value and an object at once")
        if names[-1] in node:
            raise RequestShapeError(f"{key} is sent twice")
        node[names[-1]] = value
    return tree


def check(method: str, path: str, params: Sequence[tuple[str, str]]) -> None:
    problems: list[str] = []
    _value(decode(params), OPERATIONS[operation(method, path)], "", problems)
    if problems:
        raise RequestShapeError(f"{method} {path}: " + "; ".join(problems))


def _value(value: Any, schema: dict[str, Any], path: str, problems: list[str]) -> None:
    if "anyOf" in schema:
        for option in schema["anyOf"]:
            found: list[str] = []
            _value(value, option, path, found)
            if not found:
                return
        problems.append(f"{path or 'the request'}: {value!r} fits none of its shapes")
        return
    if "enum" in schema:
        if value not in schema["enum"]:
            problems.append(f"{path}: {value!r} is not one of {schema['enum']}")
        return
    kind = schema.get("type")
    if kind == "object":
        _object(value, schema, path, problems)
    elif kind == "array":
        _array(value, schema, path, problems)
    elif not isinstance(value, str):
        problems.append(f"{path}: an object where Stripe takes a {kind}")
    elif not _scalar(value, str(kind)):
        problems.append(f"{path}: {value!r} is not a {kind}")


def _scalar(value: str, kind: str) -> bool:
    if kind == "integer":
        return re.fullmatch(r"-?[0-9]+", value) is not None
    if kind == "boolean":
        return value in ("true", "false")
    if kind in ("number", "decimal"):
        try:
            Decimal(value)
        except InvalidOperation:
            return False
        return True
    return True


def _object(value: Any, schema: dict[str, Any], path: str, problems: list[str]) -> None:
    if not isinstance(value, dict):
        problems.append(f"{path}: {value!r} where Stripe takes an object")
        return
    extra = schema.get("additionalProperties")
    properties = schema.get("properties", {})
    for key, item in value.items():
        inner = f"{path}[{key}]" if path else key
        if key in properties:
            _value(item, properties[key], inner, problems)
        elif extra is not None:
            _value(item, extra, inner, problems)
        else:
            problems.append(f"{inner}: no such parameter")
    for key in schema.get("required", []):
        if key not in value:
            problems.append(f"{path}[{key}]: required, not sent" if path
                            else f"{key}: required, not sent")


def _array(value: Any, schema: dict[str, Any], path: str, problems: list[str]) -> None:
    if not isinstance(value, dict) or not all(k.isdigit() for k in value):
        problems.append(f"{path}: not a list (items[0], items[1], …)")
        return
    indexes = sorted(int(k) for k in value)
    if indexes != list(range(len(indexes))):
        problems.append(f"{path}: list indexes {indexes} skip")
    for index in indexes:
        _value(value[str(index)], schema["items"], f"{path}[{index}]", problems)
