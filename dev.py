#!/usr/bin/env python3
"""Run finsync from a fresh clone with nothing but Python 3.11+ and pip.

    python3 dev.py demo      the reference workflow on the embedded defaults
    python3 dev.py demo --stack stripe-tryton
                             the same on real processes it starts: localstripe, trytond
                             and PostgreSQL (tests/external/stack.py; docs/demo-stack.md)
    python3 dev.py test      lint, type checks and the whole test suite (import rules included)
    python3 dev.py finsync … any finsync command inside the project's environment, in the
                             folder you call it from (`init` writes finsync.toml there)

It creates `.venv/` on first use and installs the pinned dependencies from
`requirements.lock` (hashes checked), then the project itself in editable mode.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
LOCK = ROOT / "requirements.lock"
STAMP = VENV / ".finsync-lock-sha256"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def _ensure_env() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py runs under any python3
        sys.exit("finsync needs Python 3.11 or newer")
    digest = hashlib.sha256(LOCK.read_bytes() + (ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == digest:
        return
    if not (BIN / "python").exists():
        print("dev.py: creating .venv", file=sys.stderr)
        venv.create(VENV, with_pip=True)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    print("dev.py: installing pinned dependencies from requirements.lock", file=sys.stderr)
    subprocess.run([*pip, "--require-hashes", "-r", str(LOCK)], check=True)
    subprocess.run([*pip, "--no-deps", "--no-build-isolation", "-e", str(ROOT)], check=True)
    STAMP.write_text(digest)


def _run(*argv: str, cwd: Path | None = None) -> int:
    """Run a tool of the environment; in the caller's folder unless `cwd` says otherwise
    (`finsync init` writes finsync.toml where you are, not in the project)."""
    return subprocess.run([str(BIN / argv[0]), *argv[1:]], cwd=cwd).returncode


def main(args: list[str]) -> int:
    if not args or args[0] not in {"demo", "test", "finsync"}:
        print(__doc__, file=sys.stderr)
        return 2
    _ensure_env()
    command, rest = args[0], args[1:]
    if command == "demo" and any(a == "--stack" or a.startswith("--stack=") for a in rest):
        # The processes are test-only GPL tools in virtualenvs of their own: the repository's
        # launcher starts them and drives the packaged demo against them.
        return _run("python", "-m", "tests.external.stack", *rest, cwd=ROOT)
    if command == "demo":
        return _run("finsync", "demo", *rest)
    if command == "finsync":
        return _run("finsync", *rest)
    for step in (("ruff", "check", "src", "tests", "bench", "dev.py"),
                 ("mypy",), ("mypy", "bench")):
        if code := _run(*step, cwd=ROOT):
            return code
    # On every core (pytest-xdist; `auto` is one worker more than the cores), shared out
    # as tests/conftest.py says.
    # `python3 dev.py test -n 0 …` runs in one process.
    return _run("pytest", "-n", "auto", "--dist", "loadfile", *rest, cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
