"""The fuzz campaign must hit the app `finsync serve` runs, not a look-alike."""

from __future__ import annotations

import ast
import inspect
from types import ModuleType

import pytest

from finsync.api import main
from tests.fuzz import fuzzkit

pytestmark = pytest.mark.fuzz


def _create_app_keywords(module: ModuleType, function: str) -> set[str]:
    tree = ast.parse(inspect.getsource(module))
    body = next(node for node in ast.walk(tree)
                if isinstance(node, ast.FunctionDef) and node.name == function)
    calls = [node for node in ast.walk(body) if isinstance(node, ast.Call)
             and isinstance(node.func, ast.Name) and node.func.id == "create_app"]
    assert calls, f"{function} does not call create_app"
    return {keyword.arg for call in calls for keyword in call.keywords if keyword.arg}


def test_fuzz_app_is_composed_like_serve() -> None:
    """Whatever `app_from_environment` gives `create_app` (limits, webhooks, metrics, the
    worker…), `fuzzkit.compose` gives it too."""
    served = _create_app_keywords(main, "app_from_environment")
    fuzzed = _create_app_keywords(fuzzkit, "compose")
    assert served <= fuzzed, f"the fuzz app misses {sorted(served - fuzzed)}"
