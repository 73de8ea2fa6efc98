"""Issue 12, input limits: the per-source rate limit. The fuzz campaign lifts it (it would
throttle the campaign); here a source allowed 1 request a second with a burst of 5 gets
more than that at once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.fuzz.fuzzkit import SECRET, SECRET_ENV, error_code, fuzz_config, serve
from tests.fuzz.mutants import canonical_invoice

pytestmark = pytest.mark.fuzz

BURST = 5
SENT = 20


def test_rate_limit_answers_429_with_retry_after(
        db_url: str, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Over the burst, a source is answered 429 `rate_limited` with `Retry-After` (whole
    seconds); another source is not held back by it."""
    monkeypatch.setenv(SECRET_ENV, SECRET)
    config = fuzz_config(db_url, tmp_path, requests_per_s=1, burst=BURST)
    with serve(config, engine) as served:
        answers = [served.client.post("/v1/sources/canonical/events",
                                      content=json.dumps(canonical_invoice(i)))
                   for i in range(SENT)]
        other = served.client.post("/v1/webhooks/stripe/stripe", content=b"{}")
    limited = [a for a in answers if a.status_code == 429]
    assert len(limited) >= SENT - BURST - 2  # a token or two may refill while sending
    assert {error_code(a) for a in limited} == {"rate_limited"}
    assert all(a.headers.get("retry-after", "").isdigit() for a in limited)
    assert all(int(a.headers["retry-after"]) >= 1 for a in limited)
    assert [a.status_code for a in answers[:BURST]] == [202] * BURST
    assert other.status_code != 429  # unsigned: refused for its signature, not throttled
