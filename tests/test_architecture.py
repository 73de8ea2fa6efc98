"""The import rules of STYLE.md hold (import-linter contracts in pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept() -> None:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint is not None, "import-linter is a test dependency"
    result = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 8 kept, 0 broken" in result.stdout


def test_domain_imports_no_io_at_import_time() -> None:
    code = ("import sys, finsync.domain.codec, finsync.domain.events, finsync.domain.upcast;"
            "bad = {'sqlalchemy', 'socket', 'sqlite3', 'pydantic'} & set(sys.modules);"
            "print(sorted(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_importing_the_streaming_settings_starts_no_transport() -> None:
    """`config` reads `[transport]` through `streaming.settings`: that must not load nats-py
    (nor asyncio's machinery) into every CLI command and every in-process deployment."""
    code = ("import sys, finsync.config, finsync.streaming.subjects;"
            "print(sorted(m for m in sys.modules if m == 'nats' or m.startswith('nats.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
