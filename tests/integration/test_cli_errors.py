"""Every CLI error path exits non-zero with a machine-readable code, and nothing falls back
quietly (finding 10 of the hardening issue): an unreachable database, an export to a missing
folder, a named configuration that does not exist, `dev.py` and the demo's temporary folder.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import finsync.cli.common as cli_common
import finsync.demo.run as demo_run
from finsync.cli.main import app
from tests.clikit import cli_json as _json
from tests.clikit import runner, with_auth

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "examples" / "reference-workflow.jsonl"






@pytest.fixture
def empty_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder of its own with no configuration named anywhere."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FINSYNC_CONFIG", raising=False)
    monkeypatch.delenv("FINSYNC_DATABASE_URL", raising=False)
    return tmp_path


@pytest.fixture
def workdir(empty_dir: Path, monkeypatch: pytest.MonkeyPatch, db_url: str) -> Path:
    """`finsync init` here, on each database."""
    monkeypatch.setenv("FINSYNC_DATABASE_URL", db_url)
    _json(["init"])
    return empty_dir


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nobody listens once the probe is closed


@pytest.fixture(params=["sqlite", "postgresql"])
def unreachable_url(request: pytest.FixtureRequest, empty_dir: Path) -> str:
    if request.param == "sqlite":
        (empty_dir / "a_folder").mkdir()
        return f"sqlite:///{empty_dir / 'a_folder'}"  # a folder is no database file
    return f"postgresql://postgres@127.0.0.1:{_closed_port()}/finsync"


UNREACHABLE_COMMANDS = [["status"], ["run", "--no-wait"], ["exceptions", "list"],
                        ["ingest", str(REFERENCE)], ["db", "upgrade"],
                        ["ledger", "trial-balance"]]


@pytest.mark.parametrize("command", UNREACHABLE_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_unreachable_database_exits_with_storage_unavailable(
        command: list[str], unreachable_url: str, empty_dir: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding 10: an unreachable database printed a raw traceback. It is the code the
    storage layer and the HTTP API already use for it, `storage_unavailable`."""
    (empty_dir / "finsync.toml").write_text(with_auth())
    monkeypatch.setenv("FINSYNC_DATABASE_URL", unreachable_url)
    error = _json(command, code=1)["error"]
    assert error["code"] == "storage_unavailable"
    assert error["message"].startswith("database unavailable: ")
    human = runner.invoke(app, command)
    assert human.exit_code == 1
    assert "error (storage_unavailable)" in human.stderr
    assert "Traceback" not in human.output


def test_export_to_a_missing_directory_is_directory_not_found(workdir: Path) -> None:
    """Finding 10: `ledger export /no/such/dir/x.beancount` printed a raw traceback."""
    target = workdir / "no" / "such" / "dir" / "x.beancount"
    error = _json(["ledger", "export", str(target)], code=1)["error"]
    assert error["code"] == "directory_not_found" and str(target.parent) in error["message"]
    human = runner.invoke(app, ["ledger", "export", str(target)])
    assert human.exit_code == 1 and "Traceback" not in human.output
    assert not (workdir / "no").exists()
    assert _json(["ledger", "export", str(workdir / "books.beancount")])["format"] == "beancount"


@pytest.mark.parametrize("named_by", ["option", "environment"])
def test_named_config_that_does_not_exist_is_config_not_found(
        named_by: str, empty_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding 10: a mistyped FINSYNC_CONFIG quietly created a new empty database and exited
    0. A named file that does not exist is an error, even with ./finsync.toml present."""
    args = ["status"]
    if named_by == "option":
        args += ["--config", "nope.toml"]
    else:
        monkeypatch.setenv("FINSYNC_CONFIG", "nope.toml")
    error = _json(args, code=1)["error"]
    assert error["code"] == "config_not_found" and "nope.toml" in error["message"]
    assert list(empty_dir.iterdir()) == []  # no database was created
    (empty_dir / "finsync.toml").write_text(with_auth())
    assert _json(args, code=1)["error"]["code"] == "config_not_found"
    assert not (empty_dir / "var").exists()


def test_no_config_anywhere_uses_the_defaults_and_says_so(empty_dir: Path) -> None:
    """Finding 10: with no finsync.toml and none named, the defaults were used silently.
    The defaults map no login to a principal, so nobody may act on them (deny by default)."""
    result = runner.invoke(app, ["status", "--json"])
    assert result.exit_code == 1, result.output
    error = json.loads(result.stdout)["error"]  # stdout stays one JSON object
    assert error["code"] == "not_authenticated" and "[auth.os_users]" in error["message"]
    assert "built-in defaults" in result.stderr and "finsync init" in result.stderr
    assert not (empty_dir / "var").exists()  # refused before any database was made


def test_a_bad_option_value_is_invalid_argument(empty_dir: Path) -> None:
    error = _json(["replay", "--aggregate", "no-colon"], code=2)["error"]
    assert error["code"] == "invalid_argument" and "TYPE:ID" in error["message"]


def test_a_defect_is_internal_error_with_its_traceback(
        empty_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(cli_common, "build_hub", broken)  # where commands get their hub
    (empty_dir / "finsync.toml").write_text(with_auth())
    result = runner.invoke(app, ["status", "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"] == {"code": "internal_error",
                                                   "message": "RuntimeError: boom"}
    assert "Traceback" in result.stderr


def _dev(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """dev.py as a module, its tools taken from this interpreter's environment."""
    spec = importlib.util.spec_from_file_location("finsync_dev", ROOT / "dev.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "_ensure_env", lambda: None)
    monkeypatch.setattr(module, "BIN", Path(sys.executable).parent)
    return module


def test_dev_finsync_init_writes_in_the_callers_folder(
        empty_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding 10: dev.py ran every command in the project's root, so `finsync init` in
    another folder talked about the project's own finsync.toml."""
    dev = _dev(monkeypatch)
    assert dev.main(["finsync", "init", "--json"]) == 0
    assert (empty_dir / "finsync.toml").is_file()
    assert (empty_dir / "var" / "finsync.db").is_file()


def test_dev_test_still_runs_in_the_project(empty_dir: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    dev = _dev(monkeypatch)
    calls: list[tuple[str, Path | None]] = []

    def record(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        calls.append((Path(argv[0]).name, cwd))
        return subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr(dev.subprocess, "run", record)
    assert dev.main(["test", "-k", "nothing"]) == 0
    assert calls == [("ruff", ROOT), ("mypy", ROOT), ("mypy", ROOT), ("pytest", ROOT)]
    assert dev.main(["demo", "--json"]) == 0
    assert calls[-1] == ("finsync", None)  # the demo needs no folder of its own


def test_demo_removes_its_temporary_folder(empty_dir: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding 10: every demo run left a temporary folder behind."""
    temporary = empty_dir / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    report = _json(["demo"])
    assert report["reconciliation"]["total_variance"] == {"EUR": "0.00", "USD": "0.00"}
    assert report["workdir_kept"] is False and not Path(report["workdir"]).exists()
    assert list(temporary.iterdir()) == []


def test_demo_keeps_its_folder_with_keep_and_cleans_up_after_a_failure(
        empty_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    temporary = empty_dir / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    monkeypatch.setattr(demo_run, "_year", lambda workdir: {"year": str(workdir)})
    monkeypatch.setattr(demo_run, "console_tokens", lambda workdir: workdir / "tokens")
    kept = _json(["demo", "--keep"])
    assert kept["workdir_kept"] is True and Path(kept["workdir"]).is_dir()
    given = empty_dir / "mine"
    given.mkdir()
    assert _json(["demo", "--directory", str(given)])["workdir_kept"] is True
    assert given.is_dir()
    Path(kept["workdir"]).rmdir()

    def failing(workdir: Path) -> dict[str, Any]:
        (workdir / "var").mkdir()
        raise RuntimeError("the year failed")

    monkeypatch.setattr(demo_run, "_year", failing)
    assert _json(["demo"], code=1)["error"]["code"] == "internal_error"
    assert list(temporary.iterdir()) == []  # removed on failure too
