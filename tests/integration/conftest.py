"""Session-wide external processes for the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import _unavailable
from tests.stripekit import Localstripe, LocalstripeUnavailableError, start_localstripe


@pytest.fixture(scope="session")
def localstripe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Localstripe]:
    """One localstripe for the session (GPL: its own process and virtualenv)."""
    try:
        yield from start_localstripe(tmp_path_factory.mktemp("localstripe"))
    except LocalstripeUnavailableError as exc:
        _unavailable("localstripe", exc)
