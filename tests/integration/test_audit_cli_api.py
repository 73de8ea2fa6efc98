"""`finsync audit keygen|checkpoint|verify|export` as a person types them, and the routes
GET /v1/audit and /v1/audit/verify. On both backends."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlalchemy import Engine, update

from finsync.api.app import create_app
from finsync.audit import trail
from finsync.audit.chain import Entry
from finsync.audit.service import AuditTrail
from finsync.audit.signing import Keyring
from finsync.audit.tables import trail as table
from finsync.auth.principal import AUDIT_READ, Principal
from finsync.cli.main import SIGNING_KEY
from finsync.storage.db import transaction
from tests.clikit import cli_json
from tests.hubkit import make_hub

AT = datetime(2026, 12, 1, 9, tzinfo=UTC)


def _append(engine: Engine, count: int) -> None:
    with transaction(engine) as conn:
        for n in range(count):
            trail.append(conn, Entry("ar.clerk", "exception.ignore", "exception", str(n),
                                     "duplicate of another"), AT)


def _audit_key(workdir: Path, setting: str) -> None:
    """The `[audit]` key that `init` wrote, replaced by `setting`."""
    config = workdir / "finsync.toml"
    written = f"signing_key_file = {json.dumps(SIGNING_KEY)}"
    assert written in config.read_text()
    config.write_text(config.read_text().replace(written, setting))


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FINSYNC_DATABASE_URL", db_url)
    cli_json(["init"])
    return tmp_path


def test_keygen_checkpoint_verify_export(workdir: Path, engine: Engine) -> None:
    made = cli_json(["audit", "keygen", "audit.key"])
    assert (workdir / "audit.key").stat().st_mode & 0o777 == 0o600
    assert "PRIVATE KEY" not in json.dumps(made)
    _audit_key(workdir, 'signing_key_file = "audit.key"')
    _append(engine, 3)
    signed = cli_json(["audit", "checkpoint"])
    # init recorded the adoption of its configuration: the trail holds 1 + 3 records.
    assert (signed["seq"], signed["public_key"], signed["reason"]) == \
        (4, made["public_key"], "manual")
    verdict = cli_json(["audit", "verify"])
    assert (verdict["ok"], verdict["records"], verdict["unsigned_records"]) == (True, 4, 0)
    pack = cli_json(["audit", "export", "pack", "--from", "2026-12-01", "--to", "2026-12-01"])
    assert (pack["records"], pack["checkpoints"], pack["unsigned_records"]) == (3, 1, 0)
    assert (workdir / "pack" / "verify.py").is_file()


def test_verify_names_the_record_and_exits_4(workdir: Path, engine: Engine) -> None:
    _append(engine, 3)
    with engine.begin() as conn:
        conn.execute(update(table).where(table.c.seq == 2).values(actor="someone.else"))
    verdict = cli_json(["audit", "verify"], code=4)
    assert verdict["tamper"]["kind"] == "edited" and verdict["tamper"]["seq"] == 2
    assert verdict["error"]["code"] == "audit_verify_failed"
    assert "record 2 edited" in verdict["error"]["message"]


def test_the_signing_key_may_come_from_the_environment(
        workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _audit_key(workdir, 'signing_key_env = "FINSYNC_AUDIT_KEY"')
    missing = cli_json(["audit", "checkpoint"], code=1)["error"]
    assert missing["code"] == "audit_key_error" and "FINSYNC_AUDIT_KEY" in missing["message"]
    monkeypatch.setenv("FINSYNC_AUDIT_KEY", "not a key")
    refused = cli_json(["audit", "checkpoint"], code=1)["error"]
    assert refused["code"] == "audit_key_error" and "not a key" not in refused["message"]
    monkeypatch.setenv("FINSYNC_AUDIT_KEY", "11" * 32)
    assert cli_json(["audit", "checkpoint"])["seq"] == 1  # init's adoption of its config


def test_adopt_records_nothing_on_a_new_database(workdir: Path) -> None:
    assert cli_json(["audit", "adopt"]) == {
        "adopted": {"triage_actions": 0, "ledger_period_log": 0}}
    assert cli_json(["audit", "verify"])["ok"]


def test_export_refuses_dates_out_of_order(workdir: Path) -> None:
    refused = cli_json(["audit", "export", "pack", "--from", "2026-12-02", "--to",
                        "2026-12-01"], code=1)["error"]
    assert refused["code"] == "audit_export_refused"


def test_routes_page_the_trail_and_verify_it(engine: Engine, tmp_path: Path) -> None:
    hub = make_hub(engine, tmp_path)
    keys = Keyring.of(Ed25519PrivateKey.generate())
    audit = AuditTrail(engine, keys, hub.clock)
    # An auditor's token, resolved without a token row: issuing one would add to the trail.
    auditor = Principal.of("auditor", [AUDIT_READ])
    client = TestClient(create_app(hub, audit=audit, authenticate=lambda _token: auditor),
                        headers={"Authorization": "Bearer fsk_auditor"})
    _append(engine, 5)
    audit.checkpoint("daily")
    first = client.get("/v1/audit", params={"limit": 2}).json()
    assert [r["seq"] for r in first["records"]] == [1, 2] and first["next_after"] == 2
    last = client.get("/v1/audit", params={"after": 4, "limit": 2}).json()
    assert [r["seq"] for r in last["records"]] == [5] and last["next_after"] is None
    assert last["records"][0]["at"] == "2026-12-01T09:00:00.000000Z"
    assert client.get("/v1/audit", params={"limit": 5000}).status_code == 422
    verdict = client.get("/v1/audit/verify").json()
    assert (verdict["ok"], verdict["head"]["seq"], verdict["last_checkpoint"]["seq"]) == \
        (True, 5, 5)
    with engine.begin() as conn:
        conn.execute(update(table).where(table.c.seq == 3).values(reason="edited"))
    tampered = client.get("/v1/audit/verify").json()
    assert not tampered["ok"] and tampered["tamper"]["seq"] == 3
