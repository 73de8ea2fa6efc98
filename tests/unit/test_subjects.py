"""Subjects, partitions and message ids of the NATS transport (`finsync.streaming.subjects`):
data can never add a subject level or a wildcard, a key's partition is the same in every
process, and distinct names stay distinct."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finsync.domain.events import (
    AnyEvent,
    ContractAmended,
    ContractCancelled,
    ContractRenewed,
    UsageRated,
    UsageRecorded,
)
from finsync.streaming.settings import TransportSettings, TransportSettingsError
from finsync.streaming.subjects import (
    HASH_MASK,
    entity_of,
    event_subject,
    out_event_subject,
    out_milestone_subject,
    partition_filter,
    partition_hash,
    partition_of,
    raw_msg_id,
    raw_subject,
    token,
)
from tests.strategies import EVENTS, drafts

FORBIDDEN_IN_TOKEN = frozenset(".*>")
ANY_TEXT = st.text(max_size=40)
PARTITIONS = st.integers(min_value=1, max_value=4096)
# Whole events are slow to draw, the more so on a loaded machine (as in test_codec_roundtrip).
SLOW_STRATEGIES = settings(max_examples=60, deadline=None,
                           suppress_health_check=[HealthCheck.too_slow])


def test_partition_hash_is_the_same_in_another_process() -> None:
    """Python's own `hash` of a str is salted per process; blake2b is not. A worker and the
    archiver in different processes (and machines) must agree on every partition."""
    keys = ["subscription_contract:c_1", "invoice:in_42", "", "é✓"]
    code = ("import sys; from finsync.streaming.subjects import partition_hash;"
            f"print([partition_hash(k) for k in {keys!r}])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"PYTHONHASHSEED": "random", "PYTHONPATH": "src"})
    assert out.stdout.strip() == str([partition_hash(k) for k in keys])


def test_partition_hash_is_pinned() -> None:
    # blake2b with an 8-byte digest of "invoice:in_1" is 52aff81c5ac8e95a; big-endian with
    # the top two bits cleared: 0x12aff81c5ac8e95a. Changing the hash would move aggregates
    # to other partitions while their earlier events still wait in the stream.
    assert partition_hash("invoice:in_1") == 0x12AFF81C5AC8E95A
    assert partition_of("invoice:in_1", 16) == 0x12AFF81C5AC8E95A % 16 == 10


@given(ANY_TEXT, PARTITIONS)
def test_partition_of_is_stable_and_within_range(key: str, partitions: int) -> None:
    p = partition_of(key, partitions)
    assert 0 <= p < partitions
    assert p == partition_of(key, partitions)
    assert 0 <= partition_hash(key) <= HASH_MASK < 2**63  # fits a signed BIGINT


@given(ANY_TEXT)
def test_token_never_holds_a_separator_a_wildcard_or_whitespace(text: str) -> None:
    made = token(text)
    assert made
    assert not FORBIDDEN_IN_TOKEN & set(made)
    assert not any(char.isspace() for char in made)
    assert made.isascii()


@given(st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=20))
def test_distinct_names_make_distinct_tokens(one: str, other: str) -> None:
    assert (token(one) == token(other)) == (one == other)


@given(st.sampled_from(["finsync", "t0a1b2", "acme-eu"]), ANY_TEXT,
       st.integers(min_value=0, max_value=4095))
def test_an_event_subject_has_four_levels_and_only_its_partition_matches(
        ns: str, entity: str, p: int) -> None:
    subject = event_subject(ns, entity or None, p)
    levels = subject.split(".")
    assert len(levels) == 4
    assert levels[:2] == [ns, "events"]
    assert levels[3] == str(p)
    assert _matches(partition_filter(ns, p), subject)
    assert not _matches(partition_filter(ns, p + 1), subject)


def test_subjects_read_as_documented() -> None:
    assert raw_subject("finsync", "stripe") == "finsync.raw.stripe"
    assert event_subject("finsync", "le_us", 7) == "finsync.events.le_us.7"
    assert event_subject("finsync", None, 0) == "finsync.events._.0"
    assert partition_filter("finsync", 7) == "finsync.events.*.7"
    invoice_issued = out_event_subject("finsync", "le_us", "invoice.issued")
    assert invoice_issued == "finsync.out.events.le_us.invoice.issued"
    period_closed = out_milestone_subject("finsync", "period.closed")
    assert period_closed == "finsync.out.milestones.period.closed"
    assert token("acme.com inc*>") == "acme%2Ecom%20inc%2A%3E"


@pytest.mark.parametrize("bad", ["", ".", "a..b", "invoice.", ".issued"])
def test_a_type_with_an_empty_level_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="dotted name"):
        out_event_subject("finsync", "le_us", bad)


def test_a_negative_partition_is_refused() -> None:
    with pytest.raises(ValueError, match="0 or more"):
        event_subject("finsync", "le_us", -1)
    with pytest.raises(ValueError, match="at least 1"):
        partition_of("k", 0)


@given(ANY_TEXT, ANY_TEXT)
def test_a_raw_msg_id_fits_a_header_line(source: str, source_event_id: str) -> None:
    made = raw_msg_id(source, source_event_id)
    assert made.isascii() and made.isprintable()
    assert not any(char.isspace() for char in made)


@given(st.tuples(ANY_TEXT, ANY_TEXT), st.tuples(ANY_TEXT, ANY_TEXT))
def test_distinct_source_ids_make_distinct_msg_ids(one: tuple[str, str],
                                                   other: tuple[str, str]) -> None:
    assert (raw_msg_id(*one) == raw_msg_id(*other)) == (one == other)


def test_a_msg_id_cannot_be_forged_through_a_slash_in_the_source() -> None:
    assert raw_msg_id("a/b", "c") != raw_msg_id("a", "b/c")
    assert raw_msg_id("stripe", "evt_1") == "stripe/evt_1"
    assert raw_msg_id("stripe", "evt 1\r\nX: y") == "stripe/evt%201%0D%0AX:%20y"


_NO_ENTITY = (UsageRecorded, UsageRated)
_VIA_CONTRACT = (ContractAmended, ContractRenewed, ContractCancelled)


@SLOW_STRATEGIES
@given(st.sampled_from(sorted(EVENTS, key=lambda cls: cls.name)).flatmap(
    lambda cls: EVENTS[cls]))
def test_every_event_type_has_its_documents_legal_entity(event: AnyEvent) -> None:
    expected: object
    if isinstance(event, _NO_ENTITY):
        expected = None
    elif isinstance(event, _VIA_CONTRACT):
        expected = event.amendment.contract.legal_entity
    else:
        expected = getattr(event.document, "legal_entity")  # noqa: B009 (any document type)
    assert entity_of(event) == (expected or None)


@SLOW_STRATEGIES
@given(drafts(st.sampled_from(sorted(EVENTS, key=lambda cls: cls.name)).flatmap(
    lambda cls: EVENTS[cls])))
def test_an_envelope_has_its_events_entity(draft: object) -> None:
    assert entity_of(draft) == entity_of(getattr(draft, "event"))  # noqa: B009


def test_an_object_without_an_entity_has_none() -> None:
    assert entity_of(object()) is None
    assert entity_of(None) is None


@pytest.mark.parametrize(("field", "value", "message"), [
    ("namespace", "Finsync", "namespace"),
    ("namespace", "fin.sync", "namespace"),
    ("namespace", "", "namespace"),
    ("partitions", 0, "partitions"),
    ("partitions", 4097, "partitions"),
    ("replicas", 6, "replicas"),
    ("servers", (), "servers"),
    ("duplicate_window_s", 8 * 86400.0, "duplicate_window_s"),
    ("max_deliver", 0, "max_deliver"),
])
def test_transport_settings_refuse_what_cannot_work(field: str, value: object,
                                                    message: str) -> None:
    with pytest.raises(TransportSettingsError, match=message):
        TransportSettings(**{field: value})  # type: ignore[arg-type]


def test_stream_and_bucket_names_follow_the_namespace() -> None:
    settings = TransportSettings(namespace="acme-eu")
    assert settings.stream("raw") == "ACME-EU_RAW"
    assert settings.bucket("leases") == "acme-eu_leases"


def _matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: `*` one level, `>` the rest."""
    wanted = pattern.split(".")
    levels = subject.split(".")
    for i, part in enumerate(wanted):
        if part == ">":
            return len(levels) > i
        if i >= len(levels) or (part != "*" and part != levels[i]):
            return False
    return len(levels) == len(wanted)
