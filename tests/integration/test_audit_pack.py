"""The evidence pack verifies with its own verify.py, run by a plain `python3 -I` outside
finsync's virtual environment (where `import finsync` fails), and fails when a record, a
checkpoint or the key is not the one exported. On both backends."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine

from finsync.audit import trail
from finsync.audit.chain import Entry
from finsync.audit.export import ExportError
from finsync.audit.service import AuditTrail
from finsync.audit.signing import Keyring, public_hex
from finsync.storage.db import transaction

SIGNER = Ed25519PrivateKey.generate()
DAY = datetime(2026, 11, 30, 12, tzinfo=UTC)
# The interpreter the virtual environment was made from: finsync is not installed there.
PLAIN_PYTHON = getattr(sys, "_base_executable", sys.executable)


class Clock:
    def __init__(self) -> None:
        self.now = DAY

    def __call__(self) -> datetime:
        return self.now


def _append(engine: Engine, n: int, at: datetime) -> None:
    with transaction(engine) as conn:
        trail.append(conn, Entry("gl.accountant", "period.close", "period", f"le_us:2026-{n:02d}",
                                 "month end", before={"status": "open"},
                                 after={"status": "closed"}), at)


@pytest.fixture
def audit(engine: Engine) -> tuple[AuditTrail, Clock]:
    """Three days of records: two on Nov 30, a checkpoint; two on Dec 1, a checkpoint;
    one on Dec 2, not signed yet."""
    clock = Clock()
    service = AuditTrail(engine, Keyring.of(SIGNER), clock)
    for day, count in ((0, 2), (1, 2), (2, 1)):
        for n in range(count):
            _append(engine, 10 * day + n + 1, DAY + timedelta(days=day, minutes=n))
        clock.now = DAY + timedelta(days=day, hours=11)
        if day < 2:
            service.checkpoint("daily")
    return service, clock


def _run(pack: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PLAIN_PYTHON, "-I", str(pack / "verify.py"), *args, "--json"],
                          capture_output=True, text=True, cwd=pack, timeout=60, check=False)


def _result(pack: Path, *args: str, code: int) -> dict[str, Any]:
    done = _run(pack, *args)
    assert done.returncode == code, done.stdout + done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_finsync_is_not_importable_by_the_plain_interpreter() -> None:
    done = subprocess.run([PLAIN_PYTHON, "-I", "-c", "import finsync"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 1 and "No module named 'finsync'" in done.stderr


def test_a_pack_verifies_without_finsync(audit: tuple[AuditTrail, Clock],
                                         tmp_path: Path) -> None:
    service, _ = audit
    pack = service.export(date(2026, 11, 30), date(2026, 11, 30), tmp_path / "pack")
    assert sorted(p.name for p in pack.directory.iterdir()) == [
        "README.md", "checkpoints.jsonl", "manifest.json", "public_keys.txt",
        "records.jsonl", "verify.py"]
    assert (pack.first_seq, pack.last_seq, pack.checkpoints, pack.unsigned_records) == \
        (1, 2, 1, 0)
    result = _result(pack.directory, "--public-key", public_hex(SIGNER), code=0)
    assert (result["verified"], result["records"], result["signed_through_seq"]) == \
        (True, 2, 2)


def test_a_pack_runs_to_the_first_checkpoint_after_its_last_day(
        audit: tuple[AuditTrail, Clock], tmp_path: Path) -> None:
    """Dec 1 only: records 3 and 4, anchored on record 2's hash, signed by Dec 1's
    checkpoint."""
    service, _ = audit
    pack = service.export(date(2026, 12, 1), date(2026, 12, 1), tmp_path / "pack")
    assert (pack.first_seq, pack.last_seq, pack.checkpoints) == (3, 4, 1)
    manifest = json.loads((pack.directory / "manifest.json").read_text())
    assert manifest["anchor_prev_hash"] != "0" * 64
    assert _result(pack.directory, code=0)["verified"]


def test_records_after_the_last_checkpoint_verify_but_exit_2(
        audit: tuple[AuditTrail, Clock], tmp_path: Path) -> None:
    service, _ = audit
    pack = service.export(date(2026, 11, 30), date(2026, 12, 2), tmp_path / "pack")
    assert (pack.records, pack.unsigned_records) == (5, 1)
    result = _result(pack.directory, code=2)
    assert result["verified"] and result["unsigned_records"] == 1


def _rewrite(path: Path, change: Any) -> None:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    change(lines)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


CHANGES = [
    ("records.jsonl", lambda rows: rows[0].update(actor="someone.else"), "record 1"),
    ("records.jsonl", lambda rows: rows.pop(0), "record 1"),
    ("records.jsonl", lambda rows: rows.reverse(), "record 1"),
    ("checkpoints.jsonl", lambda rows: rows[0].update(reason="manual"), "signature"),
    ("records.jsonl", lambda rows: rows[1].pop("hash"), "cannot be read"),
]


def test_a_changed_pack_fails(audit: tuple[AuditTrail, Clock], tmp_path: Path) -> None:
    service, _ = audit
    pack = service.export(date(2026, 11, 30), date(2026, 11, 30), tmp_path / "pack")
    for n, (file, change, named) in enumerate(CHANGES):
        changed = shutil.copytree(pack.directory, tmp_path / f"changed-{n}")
        _rewrite(changed / file, change)
        result = _result(changed, code=1)
        assert not result["verified"] and named in result["problems"][0], result["problems"]


def test_a_pack_re_signed_with_another_key_fails_the_pinned_key(
        audit: tuple[AuditTrail, Clock], tmp_path: Path, engine: Engine) -> None:
    _, clock = audit
    forger = AuditTrail(engine, Keyring.of(Ed25519PrivateKey.generate()), clock)
    forger.checkpoint("daily")
    pack = forger.export(date(2026, 11, 30), date(2026, 12, 2), tmp_path / "pack")
    problems = _result(pack.directory, "--public-key", public_hex(SIGNER), code=1)["problems"]
    assert sum("not trusted" in p for p in problems) == 1


def test_export_refuses_a_folder_that_holds_files(audit: tuple[AuditTrail, Clock],
                                                  tmp_path: Path) -> None:
    (tmp_path / "pack").mkdir()
    (tmp_path / "pack" / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="not an empty folder"):
        audit[0].export(date(2026, 11, 30), date(2026, 11, 30), tmp_path / "pack")


def test_the_verifier_speaks_plainly_without_json(audit: tuple[AuditTrail, Clock],
                                                  tmp_path: Path) -> None:
    pack = audit[0].export(date(2026, 11, 30), date(2026, 11, 30), tmp_path / "pack")
    done = subprocess.run([PLAIN_PYTHON, "-I", "verify.py"], capture_output=True, text=True,
                          cwd=pack.directory, timeout=60, check=False)
    assert done.returncode == 0 and done.stdout.splitlines()[-1] == "VERIFIED", done.stdout
    _rewrite(pack.directory / "records.jsonl", lambda rows: rows[1].update(reason="x"))
    done = subprocess.run([PLAIN_PYTHON, "-I", "verify.py"], capture_output=True, text=True,
                          cwd=pack.directory, timeout=60, check=False)
    assert done.returncode == 1
    assert done.stdout.splitlines()[0] == "FAILED: record 2: its fields do not match its " \
        "hash (edited)"
