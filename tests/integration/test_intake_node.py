"""`finsync serve --role intake` as a real process on the 3-node cluster: it answers an
authenticated request 202 once JetStream has it, runs no pipeline and stores nothing; with
the in-process transport it is refused before it binds its port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import finsync
from finsync.auth.principal import events_write
from finsync.cli.main import app
from finsync.storage.db import make_engine
from finsync.streaming.client import JetStream
from finsync.streaming.raw_message import read_raw
from finsync.streaming.settings import TransportSettings
from finsync.streaming.setup import RAW
from finsync.streaming.subjects import raw_filter
from tests import authkit
from tests.clikit import runner, with_auth
from tests.natskit import free_port
from tests.rawkit import payment, raw_rows, stream_messages

WAIT_MAX_S = 90.0  # liveness only (a loaded machine starts an interpreter slowly)


def _config(tmp_path: Path, transport: TransportSettings | None) -> Path:
    """The shipped configuration (its database: `FINSYNC_DATABASE_URL`), on `transport`."""
    text = with_auth()
    if transport is not None:
        servers = ", ".join(f'"{s}"' for s in transport.servers)
        text = text.replace('[transport]\nkind = "inprocess"\n',
                            f'[transport]\nkind = "nats"\nservers = [{servers}]\n'
                            f'namespace = "{transport.namespace}"\n')
        assert 'kind = "nats"' in text
    path = tmp_path / "finsync.toml"
    path.write_text(text)
    return path


def _serve(config: Path, tmp_path: Path, port: int, db_url: str) -> subprocess.Popen[bytes]:
    source = str(Path(finsync.__file__).resolve().parents[1])
    env = {**os.environ, "FINSYNC_DATABASE_URL": db_url,
           "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")])}
    with (tmp_path / "serve.log").open("ab") as log:  # the child holds its own copy
        return subprocess.Popen([sys.executable, "-m", "finsync", "serve", "--role", "intake",
                                 "--port", str(port), "--config", str(config)], env=env,
                                cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)


def _post(url: str, body: bytes, token: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, body, {**authkit.bearer(token),
                                                 "content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _health(base: str) -> bytes | None:
    try:
        with urllib.request.urlopen(f"{base}/healthz", timeout=5) as response:
            return bytes(response.read())
    except OSError:
        return None


def test_an_intake_node_publishes_and_stores_nothing(
        db_url: str, tmp_path: Path, transport_settings: TransportSettings) -> None:
    engine = make_engine(db_url)
    token = authkit.issue(engine, [events_write("billing")])
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    node = _serve(_config(tmp_path, transport_settings), tmp_path, port, db_url)
    try:
        started = time.monotonic()
        while (health := _health(base)) is None:
            assert node.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() - started < WAIT_MAX_S, "the intake node did not start"
            time.sleep(0.2)
        assert b"not run by this process" in health
        status, answer = _post(f"{base}/v1/sources/billing/events", payment(3), token)
        assert status == 202, answer
        with JetStream(transport_settings, "observer") as js:
            [message] = stream_messages(js, transport_settings, RAW,
                                        raw_filter(transport_settings.namespace))
        assert read_raw(message.data, message.headers).transport_id.startswith(
            "billing/gw-3#")
        assert raw_rows(engine) == []
        node.send_signal(signal.SIGTERM)
        # uvicorn shuts down cleanly, then re-raises the SIGTERM it handled.
        assert node.wait(WAIT_MAX_S) in (0, -signal.SIGTERM), (tmp_path / "serve.log").read_text()
        assert "Application shutdown complete" in (tmp_path / "serve.log").read_text()
    finally:
        if node.poll() is None:
            node.kill()
            node.wait()
        engine.dispose()


def test_an_intake_node_needs_nats(db_url: str, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINSYNC_DATABASE_URL", db_url)
    config = _config(tmp_path, None)
    result = runner.invoke(app, ["serve", "--role", "intake", "--config", str(config)])
    assert result.exit_code == 1
    assert "transport_not_configured" in result.output
    assert 'kind = "nats"' in result.output
