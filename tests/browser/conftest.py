"""Fixtures of the browser tests (`tests/browserkit.py`)."""

from tests.browserkit import browser, shots, site

__all__ = ["browser", "shots", "site"]
