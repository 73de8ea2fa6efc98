"""Issue 12, "Must hold": a fuzz campaign against every intake and webhook route, on SQLite
and PostgreSQL, then what must still be true (findings 1-6).

One campaign per backend (`campaign.Campaign`): over 10,000 requests on SQLite, a smaller
run on PostgreSQL. Each test below judges one promise against what that campaign left, so a
failure names the promise it breaks and shows samples of the requests that broke it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from finsync.domain.errors import ExceptionClass
from finsync.storage.db import make_engine
from tests.fuzz.campaign import READ_EXAMPLES, Campaign, Outcome
from tests.fuzz.fuzzkit import BODY_MAX_BYTES, SECRET, SECRET_ENV, fuzz_config, serve

pytestmark = pytest.mark.fuzz

# Over 10,000 requests on SQLite (issue 12); on PostgreSQL the whole corpus and sweep and a
# tenth of the generated phases: the same routes and limits on another storage, whose
# statements the first thousand requests already exercise (0.2: 2,767 requests, 25 s).
# FINSYNC_FUZZ_SCALE multiplies both for a longer campaign on a workstation, e.g. 10 for
# some 100,000 requests on SQLite (the minimums below stay).
LONGER = float(os.environ.get("FINSYNC_FUZZ_SCALE", "1"))
SCALE = {"sqlite": 1.0 * LONGER, "postgresql": 0.1 * LONGER}
REQUESTS_MIN = {"sqlite": 10_000, "postgresql": 1_000}


@pytest.fixture(scope="module")
def outcome(fuzz_db_url: str, tmp_path_factory: pytest.TempPathFactory,
            fuzz_report: list[str]) -> Iterator[Outcome]:
    backend = "sqlite" if fuzz_db_url.startswith("sqlite") else "postgresql"
    base_dir: Path = tmp_path_factory.mktemp(f"fuzz-{backend}")
    engine = make_engine(fuzz_db_url)
    with pytest.MonkeyPatch.context() as env:
        env.setenv(SECRET_ENV, SECRET)
        with serve(fuzz_config(fuzz_db_url, base_dir), engine) as served:
            result = Campaign(served, backend, SCALE[backend]).run()
    engine.dispose()
    fuzz_report.extend(result.lines())
    yield result


def _samples(items: list[str] | list[tuple[int, str, str | None]]) -> str:
    return "\n  ".join(str(item) for item in items[:12])


def test_campaign_sends_its_planned_volume(outcome: Outcome,
                                           request: pytest.FixtureRequest) -> None:
    """The counts the closing note of issue 12 quotes, also kept as the test's properties
    (JUnit XML). `user_properties` directly: `record_property` warns under xunit2."""
    request.node.user_properties.extend([
        ("requests_sent", outcome.tally.sent),
        ("responses_by_class", outcome.tally.classes()),
        ("exceptions_by_class", outcome.classes),
        ("elapsed_s", round(outcome.elapsed_s, 1))])
    sent = outcome.tally.sent
    assert sent >= REQUESTS_MIN[outcome.backend]


def test_server_answers_after_the_fuzz(outcome: Outcome) -> None:
    """Finding 1: after a body of 100,000 nested arrays the app still answered, but nothing
    was processed, and `/healthz` said ok. Served with its supervised pipeline after the
    fuzz, the app reports that pipeline healthy."""
    status, body = outcome.healthz
    assert status == 200, body


def test_fuzz_gets_no_5xx(outcome: Outcome) -> None:
    """Findings 1 and 5: deep nesting got a plain-text 500. Every request gets a 2xx or a
    4xx, never a 5xx."""
    statuses = {s: n for s, n in outcome.tally.statuses.items() if not 200 <= s < 500}
    samples = _samples(outcome.tally.server_errors)
    assert not statuses, f"{statuses}; samples:\n  {samples}"


def test_fuzz_refusals_have_a_code(outcome: Outcome) -> None:
    """Every 4xx is `{"error": {"code": <snake_case>, ...}}`, including refusals made by
    the framework (an unmatched path, a malformed request)."""
    uncoded = len(outcome.tally.uncoded)
    assert not uncoded, f"samples:\n  {_samples(outcome.tally.uncoded)}"


def test_limits_refuse_hostile_bodies_at_the_boundary(outcome: Outcome) -> None:
    """Findings 1, 2, 3 and 6: nesting deeper than `json_depth_max`, more elements than
    `json_items_max`, a body over `body_max_bytes`, ids over 255 characters, amounts that
    are huge or not in the strict decimal grammar, implausible dates: each is refused at
    once with a 4xx and a code. A body of exactly the limit is accepted."""
    misses = len(outcome.probe_misses)
    assert not misses, f"probes:\n  {_samples(outcome.probe_misses)}"


def test_bodies_over_the_limit_are_never_stored(outcome: Outcome) -> None:
    """Finding 3: a 50 MB body was stored whole. A refused body is kept only when it is
    within limits."""
    largest = outcome.largest_body
    assert largest <= BODY_MAX_BYTES


def test_pipeline_runs_through_every_payload(outcome: Outcome) -> None:
    """Findings 1, 2 and 5: a `RecursionError`, an `OverflowError` or one bad row stopped
    the pipeline for everything behind it. A failure on one item becomes an exception on
    that item; `run_until_idle` itself never raises."""
    runs_raised = sum(outcome.pipeline_errors.values())
    assert not runs_raised, f"errors: {dict(outcome.pipeline_errors.most_common(5))}"


def test_bad_input_is_never_an_internal_error(outcome: Outcome) -> None:
    """Bad input is the sender's: a `mapping_error` (or another class) with a code, never an
    `internal_error`, which says finsync has a defect. An `internal_error` here means the
    quarantine held (the item failed alone) but something raised an untyped error
    (`ValueError`, `OverflowError`…) on input it should have refused."""
    defects = len(outcome.internal_errors)
    assert not defects, f"summaries:\n  {_samples(outcome.internal_errors)}"


def test_every_raw_event_is_mapped_or_attached_to_an_exception(outcome: Outcome) -> None:
    """Nothing is lost and nothing waits unseen: every stored raw event is `mapped`, or an
    exception names it (`raw_event_id`, or `raw_event:<id>` among an aggregated refusal's
    objects)."""
    unattached = len(outcome.unattached)
    assert not unattached, f"raw events, e.g.:\n  {_samples(outcome.unattached)}"


def test_no_delivery_is_in_flight_or_stuck(outcome: Outcome) -> None:
    """Finding 2: a delivery stayed `in_flight` forever and everything queued behind it
    stopped. After the pipeline settles no delivery is in flight, every pending one has a
    next attempt (or waits behind an earlier one of its aggregate), and every failed or
    dead one has its exception."""
    stuck = len(outcome.stuck)
    assert not stuck, f"deliveries:\n  {_samples(outcome.stuck)}"


@pytest.mark.parametrize("route", ["canonical", "stripe"])
def test_a_valid_event_after_the_fuzz_is_delivered(outcome: Outcome, route: str) -> None:
    """Findings 1 and 2: once jammed, the pipeline delivered nothing more. A valid event
    sent after the fuzz reaches the ledger."""
    reached, detail = outcome.after_fuzz[route]
    assert reached, detail


def test_changed_duplicates_open_duplicate_event(outcome: Outcome) -> None:
    """Finding 4: the same event id with a different amount (59,999.00 for 60,000.00) was
    counted as a duplicate and dropped. Each such resend opens a `duplicate_event`."""
    opened, _seen = outcome.classes.get(ExceptionClass.DUPLICATE_EVENT, (0, 0))
    assert opened >= outcome.changed_duplicates


def test_every_json_read_was_fuzzed(outcome: Outcome) -> None:
    """The console's JSON read API is in the campaign: every GET route of the OpenAPI
    document got schemathesis's cases (no 5xx and coded refusals: the tests above)."""
    assert len(outcome.reads) >= 10, dict(outcome.reads)
    assert all(sent >= 1 for sent in outcome.reads.values()), dict(outcome.reads)
    assert sum(outcome.reads.values()) >= len(outcome.reads) * min(2, READ_EXAMPLES) // 2
